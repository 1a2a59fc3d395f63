//! `/hosts`: the development hosts (their events get a rule's `dev_handling`). List with a
//! filter, add, rename, remove, and a bulk import from CSV (one hostname a line, a file or
//! pasted text) that lists every bad line and takes nothing until all are good.
//!
//! Changes go through the API's functions (`api::hosts::{insert_host, remove_host}`): the
//! same checks, config-audit rows with the session's key name, and the notice to the
//! alerters (once per import).

use super::csv::{self, LineError};
use super::host_table::{ImportPage, again, import_answer, insert_rows, reason_of, repeated};
use super::rules::failure;
use super::session::Session;
use super::{FieldErrors, Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use crate::api::hosts::{insert_host, remove_host, required};
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mutt_core::normalize::MAX_HOSTNAME_LEN;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/hosts", get(list))
        .route("/hosts/add", post(add))
        .route("/hosts/edit", post(edit))
        .route("/hosts/remove", post(remove))
        .route("/hosts/import", post(import))
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    /// The host whose row shows the rename form.
    #[serde(default)]
    edit: String,
}

#[derive(Template)]
#[template(path = "hosts.html")]
struct HostsPage {
    page: Page,
    q: String,
    hosts: Vec<String>,
    total: usize,
    /// The row being renamed, and the text in its field.
    edit: String,
    new_hostname: String,
    /// The add form's text.
    hostname: String,
    /// Errors by form: `add`, `edit`.
    errors: FieldErrors,
    /// The import's text (kept when lines were wrong) and its bad lines.
    csv: String,
    import_errors: Vec<LineError>,
}

/// The page with `q` applied, before the form state is set.
async fn page(state: &WebState, session: &Session, q: &str) -> Result<HostsPage, Response> {
    let mut hosts = match state.store.development_hosts().await {
        Ok(h) => h,
        Err(e) => return Err(failure(session, "Development hosts", "/hosts", &ApiError::from(e))),
    };
    let total = hosts.len();
    let needle = q.trim().to_lowercase();
    hosts.retain(|h| h.to_lowercase().contains(&needle));
    Ok(HostsPage {
        page: session.page("Development hosts", "/hosts"),
        q: q.to_owned(),
        hosts,
        total,
        edit: String::new(),
        new_hostname: String::new(),
        hostname: String::new(),
        errors: FieldErrors::default(),
        csv: String::new(),
        import_errors: Vec::new(),
    })
}

impl ImportPage for HostsPage {
    fn import_parts(&mut self) -> (&mut Page, &mut String, &mut Vec<LineError>) {
        (&mut self.page, &mut self.csv, &mut self.import_errors)
    }
}

async fn list(State(state): State<Arc<WebState>>, session: Session, Query(q): Query<ListQuery>) -> Response {
    match page(&state, &session, &q.q).await {
        Ok(mut p) => {
            p.new_hostname = q.edit.clone();
            p.edit = q.edit;
            render(&p)
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct HostForm {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    new_hostname: String,
    #[serde(default)]
    reason: String,
}

async fn add(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(f): Form<HostForm>,
) -> Response {
    let result = match required("hostname", Some(f.hostname.clone()), MAX_HOSTNAME_LEN, "hostname is required") {
        Ok(h) => insert_host(&state, &caller, &h, reason_of(&f.reason)).await.map(|()| h),
        Err(e) => Err(e),
    };
    match result {
        Ok(h) => {
            caller.announce(&state).await;
            session.flash_ok(format!("{h} is now a development host."));
            Redirect::to("/hosts").into_response()
        }
        Err(e) => again(page(&state, &session, "").await, |p| {
            p.hostname = f.hostname;
            p.errors.insert("add", e.message().to_owned());
        }),
    }
}

/// Renames a development host: the new name added, then the old one removed (two audit
/// rows, as the API would write them).
async fn edit(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(f): Form<HostForm>,
) -> Response {
    let old = f.hostname.trim().to_owned();
    let result = match required("hostname", Some(f.new_hostname.clone()), MAX_HOSTNAME_LEN, "hostname is required") {
        Ok(new) if new == old => Ok(None),
        Ok(new) => match insert_host(&state, &caller, &new, reason_of(&f.reason)).await {
            Ok(()) => remove_host(&state, &caller, &old, reason_of(&f.reason)).await.map(|()| Some(new)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(new) => {
            if let Some(new) = new {
                session.flash_ok(format!("{old} renamed to {new}."));
            }
            Redirect::to("/hosts").into_response()
        }
        Err(e) => again(page(&state, &session, "").await, |p| {
            (p.edit, p.new_hostname) = (old, f.new_hostname);
            p.errors.insert("edit", e.message().to_owned());
        }),
    }
}

async fn remove(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(f): Form<HostForm>,
) -> Response {
    let hostname = f.hostname.trim();
    match remove_host(&state, &caller, hostname, reason_of(&f.reason)).await {
        Ok(()) => session.flash_ok(format!("{hostname} is no longer a development host.")),
        Err(e) => session.flash_error(format!("{hostname} was not removed: {}", e.message())),
    }
    Redirect::to("/hosts").into_response()
}

/// The import's lines checked against each other and the hosts there are: every problem, or
/// the hostnames to add.
fn check_import(text: &str, existing: &HashSet<String>) -> csv::Checked<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    csv::check(text, &["hostname"], |line, fields| {
        let given = fields.into_iter().next();
        let h =
            required("hostname", given, MAX_HOSTNAME_LEN, "hostname is empty").map_err(|e| e.message().to_owned())?;
        repeated(&mut seen, &h, line)?;
        if existing.contains(&h) {
            return Err(format!("{h} is already a development host"));
        }
        Ok(h)
    })
}

/// Imports the hostnames of `text` when every line is good (see [`csv::Checked`]).
async fn import(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    csv::ImportBody(text): csv::ImportBody,
) -> Response {
    let existing = match state.store.development_hosts().await {
        Ok(h) => h.into_iter().collect(),
        Err(e) => return failure(&session, "Development hosts", "/hosts", &ApiError::from(e)),
    };
    let mut checked = check_import(&text, &existing);
    let (state, caller) = (&*state, &caller);
    let imported = insert_rows(state, caller, &mut checked, |h| async move {
        insert_host(state, caller, &h, Some("CSV import".into())).await.map_err(|e| format!("{h}: {}", e.message()))
    })
    .await;
    let outcome = (text, checked.errors, imported);
    import_answer(&session, "/hosts", "development host(s)", outcome, page(state, &session, "")).await
}
