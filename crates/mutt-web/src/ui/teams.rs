//! `/teams`: which team a host's alerts go to (`device_teams`, ahead of a rule's own team).
//! List with a filter, add, change a host's team, remove, and a bulk import from CSV
//! (`hostname,team_assignment` a line, a file or pasted text) that lists every bad line and
//! takes nothing until all are good.
//!
//! Changes go through the API's functions (`api::hosts::{insert_team, change_team,
//! remove_team}`): the same checks, config-audit rows with the session's key name, and the
//! notice to the alerters (once per import).

use super::csv::{self, LineError};
use super::host_table::{ImportPage, again, import_answer, insert_rows, reason_of, repeated};
use super::rules::failure;
use super::session::Session;
use super::{FieldErrors, Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use crate::api::hosts::{MAX_TEAM_LEN, change_team, insert_team, remove_team, required};
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mutt_core::normalize::MAX_HOSTNAME_LEN;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/teams", get(list))
        .route("/teams/add", post(add))
        .route("/teams/edit", post(edit))
        .route("/teams/remove", post(remove))
        .route("/teams/import", post(import))
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    /// Part of a hostname or a team name.
    #[serde(default)]
    q: String,
    /// The host whose row shows the change-team form.
    #[serde(default)]
    edit: String,
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    page: Page,
    q: String,
    teams: Vec<(String, String)>,
    total: usize,
    /// The row being edited, and the team in its field.
    edit: String,
    edit_team: String,
    /// The add form's text.
    hostname: String,
    team: String,
    /// Errors by field: `hostname`, `team_assignment` (add form), `edit`.
    errors: FieldErrors,
    /// The import's text (kept when lines were wrong) and its bad lines.
    csv: String,
    import_errors: Vec<LineError>,
}

async fn page(state: &WebState, session: &Session, q: &str) -> Result<TeamsPage, Response> {
    let mut teams = match state.store.device_teams().await {
        Ok(t) => t,
        Err(e) => return Err(failure(session, "Teams", "/teams", &ApiError::from(e))),
    };
    let total = teams.len();
    let needle = q.trim().to_lowercase();
    teams.retain(|(h, t)| h.to_lowercase().contains(&needle) || t.to_lowercase().contains(&needle));
    Ok(TeamsPage {
        page: session.page("Teams", "/teams"),
        q: q.to_owned(),
        teams,
        total,
        edit: String::new(),
        edit_team: String::new(),
        hostname: String::new(),
        team: String::new(),
        errors: FieldErrors::default(),
        csv: String::new(),
        import_errors: Vec::new(),
    })
}

impl ImportPage for TeamsPage {
    fn import_parts(&mut self) -> (&mut Page, &mut String, &mut Vec<LineError>) {
        (&mut self.page, &mut self.csv, &mut self.import_errors)
    }
}

async fn list(State(state): State<Arc<WebState>>, session: Session, Query(q): Query<ListQuery>) -> Response {
    match page(&state, &session, &q.q).await {
        Ok(mut p) => {
            p.edit_team = p.teams.iter().find(|(h, _)| *h == q.edit).map(|(_, t)| t.clone()).unwrap_or_default();
            p.edit = q.edit;
            render(&p)
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct TeamForm {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    team_assignment: String,
    #[serde(default)]
    reason: String,
}

/// The form's hostname and team, checked as the API checks them.
fn checked(f: &TeamForm) -> Result<(String, String), ApiError> {
    let missing = "hostname and team_assignment are required";
    let hostname = required("hostname", Some(f.hostname.clone()), MAX_HOSTNAME_LEN, missing)?;
    let team = required("team_assignment", Some(f.team_assignment.clone()), MAX_TEAM_LEN, missing)?;
    Ok((hostname, team))
}

async fn add(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(f): Form<TeamForm>,
) -> Response {
    let result = match checked(&f) {
        Ok((h, t)) => insert_team(&state, &caller, &h, &t, reason_of(&f.reason)).await.map(|()| (h, t)),
        Err(e) => Err(e),
    };
    match result {
        Ok((h, t)) => {
            caller.announce(&state).await;
            session.flash_ok(format!("{h} now goes to {t}."));
            Redirect::to("/teams").into_response()
        }
        Err(e) => again(page(&state, &session, "").await, |p| {
            // A conflict is the hostname's fault; a missing field names itself.
            let field = e.field().unwrap_or("hostname");
            p.errors.insert(field, e.message());
            (p.hostname, p.team) = (f.hostname, f.team_assignment);
        }),
    }
}

async fn edit(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(f): Form<TeamForm>,
) -> Response {
    let result = match checked(&f) {
        Ok((h, t)) => change_team(&state, &caller, &h, &t, reason_of(&f.reason)).await.map(|()| (h, t)),
        Err(e) => Err(e),
    };
    match result {
        Ok((h, t)) => {
            session.flash_ok(format!("{h} now goes to {t}."));
            Redirect::to("/teams").into_response()
        }
        Err(e) => again(page(&state, &session, "").await, |p| {
            p.errors.insert("edit", e.message());
            (p.edit, p.edit_team) = (f.hostname.trim().to_owned(), f.team_assignment);
        }),
    }
}

async fn remove(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(f): Form<TeamForm>,
) -> Response {
    let hostname = f.hostname.trim();
    match remove_team(&state, &caller, hostname, reason_of(&f.reason)).await {
        Ok(()) => session.flash_ok(format!("{hostname} has no team mapping any more.")),
        Err(e) => session.flash_error(format!("{hostname}'s mapping was not removed: {}", e.message())),
    }
    Redirect::to("/teams").into_response()
}

/// The import's lines checked against each other and the mappings there are.
fn check_import(text: &str, existing: &HashMap<String, String>) -> csv::Checked<(String, String)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    csv::check(text, &["hostname", "team_assignment"], |line, fields| {
        let mut fields = fields.into_iter();
        let (h, t) = (fields.next(), fields.next());
        let h = required("hostname", h, MAX_HOSTNAME_LEN, "hostname is empty").map_err(|e| e.message().to_owned())?;
        let t = required("team_assignment", t, MAX_TEAM_LEN, "team_assignment is empty")
            .map_err(|e| e.message().to_owned())?;
        repeated(&mut seen, &h, line)?;
        if let Some(current) = existing.get(&h) {
            return Err(format!("{h} already goes to {current} (change it on its row)"));
        }
        Ok((h, t))
    })
}

/// Imports the mappings of `text` when every line is good (see [`csv::Checked`]).
async fn import(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    csv::ImportBody(text): csv::ImportBody,
) -> Response {
    let existing: HashMap<String, String> = match state.store.device_teams().await {
        Ok(t) => t.into_iter().collect(),
        Err(e) => return failure(&session, "Teams", "/teams", &ApiError::from(e)),
    };
    let mut checked = check_import(&text, &existing);
    let (state, caller) = (&*state, &caller);
    let imported = insert_rows(state, caller, &mut checked, |(h, t)| async move {
        insert_team(state, caller, &h, &t, Some("CSV import".into())).await.map_err(|e| format!("{h}: {}", e.message()))
    })
    .await;
    let outcome = (text, checked.errors, imported);
    import_answer(&session, "/teams", "team mapping(s)", outcome, page(state, &session, "")).await
}
