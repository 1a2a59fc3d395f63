//! `/rules`: the alert rules in the console. The list (filters: match text, team, active; in
//! decision order, paged), one form to create or edit a rule with the parser's error next to
//! the field at fault, a tester panel in the same form (an event pasted as JSON or picked from
//! the event audit, tested against the stored rules with the draft in place of the rule it
//! edits, before anything is saved), deactivation, and the rule's recent matches. The flap
//! limit (`flap_threshold`/`flap_window_secs`, both or neither) is two optional form fields, a
//! badge in the list and a line in the tester's result.
//!
//! Changes go through the API's own functions (`api::rules::{create, replace, deactivate}`):
//! the same checks, the same config-audit row (with the session's key name), the same notice
//! to the alerters. The tester is the API's (`api::tester::example_event`, then
//! `mutt_core::rule::tester::test_event`).

use super::session::Session;
use super::{FieldErrors, Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use crate::api::rules::{RULE_FIELDS, create, deactivate, draft_of, replace};
use crate::api::tester::example_event;
use crate::error::ApiError;
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mutt_core::rule::tester::{RuleTestReport, test_event};
use mutt_core::rule::{RuleDraft, ValidRule};
use mutt_core::{MatchType, Rule, RuleSet};
use mutt_store::manage::{EventAuditFilter, EventAuditRow};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Rules per page of the list.
const PAGE_SIZE: usize = 100;
/// Recent events offered by the tester's picker, and recent matches shown for a rule.
const RECENT: u32 = 20;
/// How far back the tester's picker looks.
const PICKER_HOURS: i64 = 24;
/// The id the tester gives a draft that is not stored yet: after every stored rule of the
/// same priority, as its real id will be.
const DRAFT_ID: i32 = i32::MAX;

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/rules", get(list))
        .route("/rules/new", get(new_form).post(submit_new))
        .route("/rules/{id}", get(edit_form).post(submit_edit))
        .route("/rules/{id}/deactivate", post(submit_deactivate))
}

#[derive(Template)]
#[template(path = "rules_failure.html")]
struct FailurePage {
    page: Page,
    message: String,
}

/// A page that could not be shown (no such rule, the database unavailable): the reason, with
/// the API's status for it. Shared by the hosts and teams pages.
pub(super) fn failure(session: &Session, title: &str, nav: &'static str, e: &ApiError) -> Response {
    let page = FailurePage { page: session.page(title, nav), message: e.message().to_owned() };
    (e.status(), render(&page)).into_response()
}

// ---------------------------------------------------------------------------------------
// The list

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    team: String,
    /// `yes`, `no`, anything else: both.
    #[serde(default)]
    active: String,
    #[serde(default)]
    page: Option<usize>,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct ListPage {
    page: Page,
    q: String,
    team: String,
    active: String,
    teams: Vec<String>,
    rules: Vec<Rule>,
    total: usize,
    matching: usize,
    page_no: usize,
    pages: usize,
}

impl ListPage {
    /// The list's URL with the current filters on page `n`.
    fn page_url(&self, n: usize) -> String {
        let q = serde_urlencoded::to_string([
            ("q", self.q.as_str()),
            ("team", self.team.as_str()),
            ("active", self.active.as_str()),
            ("page", &n.to_string()),
        ])
        .unwrap_or_default();
        format!("/rules?{q}")
    }

    /// A rule's flap limit (events, seconds), for the list's badge.
    fn flap(&self, r: &Rule) -> Option<(i32, i32)> {
        Some((r.flap_threshold?, r.flap_window_secs?))
    }
}

/// Whether `rule` passes the filters; `needle` is `q.q` trimmed and lower-cased (once per
/// page, not per rule).
fn keep(rule: &Rule, q: &ListQuery, needle: &str) -> bool {
    let text = |s: &Option<String>| s.as_deref().is_some_and(|s| s.to_lowercase().contains(needle));
    (needle.is_empty() || text(&rule.match_string) || text(&rule.trap_oid))
        && (q.team.is_empty() || rule.team_assignment == q.team)
        && match q.active.as_str() {
            "yes" => rule.is_active,
            "no" => !rule.is_active,
            _ => true,
        }
}

async fn list(State(state): State<Arc<WebState>>, session: Session, Query(q): Query<ListQuery>) -> Response {
    let mut rules = match state.store.list_rules().await {
        Ok(r) => r,
        Err(e) => return failure(&session, "Rules", "/rules", &ApiError::from(e)),
    };
    let total = rules.len();
    let mut teams: Vec<String> = rules.iter().map(|r| r.team_assignment.clone()).collect();
    teams.sort();
    teams.dedup();
    let needle = q.q.trim().to_lowercase();
    rules.retain(|r| keep(r, &q, &needle));
    rules.sort_by_key(|r| (r.priority, r.id));
    let matching = rules.len();
    let pages = matching.div_ceil(PAGE_SIZE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let rules = rules.into_iter().skip((page_no - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
    let page = session.page("Rules", "/rules");
    render(&ListPage { page, q: q.q, team: q.team, active: q.active, teams, rules, total, matching, page_no, pages })
}

// ---------------------------------------------------------------------------------------
// The form and the tester

/// The form as posted: every rule field as text (checked here, so that a bad number is an
/// error next to its field, not a rejected request), the tester's inputs and which button.
#[derive(Deserialize, Default, Clone)]
pub(super) struct RuleForm {
    #[serde(default)]
    match_type: String,
    #[serde(default)]
    match_string: String,
    #[serde(default)]
    trap_oid: String,
    #[serde(default)]
    syslog_severity: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    prod_handling: String,
    #[serde(default)]
    dev_handling: String,
    #[serde(default)]
    team_assignment: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    is_active: Option<String>,
    /// Flap suppression, both or neither. `None` (not posted at all): the stored value stays;
    /// empty: no limit.
    #[serde(default)]
    flap_threshold: Option<String>,
    #[serde(default)]
    flap_window_secs: Option<String>,
    #[serde(default)]
    reason: String,
    /// The tester: an event as JSON, or the id of an audited event.
    #[serde(default)]
    event_json: String,
    #[serde(default)]
    event_id: String,
    /// `test` (run the tester, save nothing) or `save`.
    #[serde(default)]
    action: String,
}

impl RuleForm {
    /// The form of a stored rule (or of a draft prefilled from the query string).
    fn of(r: &RuleDraft) -> Self {
        Self {
            match_type: r.match_type.as_str().to_owned(),
            match_string: r.match_string.clone().unwrap_or_default(),
            trap_oid: r.trap_oid.clone().unwrap_or_default(),
            syslog_severity: r.syslog_severity.map(|s| s.to_string()).unwrap_or_default(),
            priority: r.priority.to_string(),
            prod_handling: r.prod_handling.clone(),
            dev_handling: r.dev_handling.clone(),
            team_assignment: r.team_assignment.clone(),
            is_active: r.is_active.then(|| "on".to_owned()),
            flap_threshold: Some(r.flap_threshold.map(|n| n.to_string()).unwrap_or_default()),
            flap_window_secs: Some(r.flap_window_secs.map(|n| n.to_string()).unwrap_or_default()),
            ..Self::default()
        }
    }

    /// The draft this form describes, laid over `base` (the stored rule's draft when
    /// editing, so that fields the form does not show are kept; the draft's defaults for a
    /// new rule); or the errors by field.
    fn draft(&self, base: Option<&RuleDraft>) -> Result<ValidRule, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut m = match base.map(|b| json!(b)) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        match self.match_type.parse::<MatchType>() {
            Ok(t) => {
                m.insert("match_type".into(), json!(t));
            }
            Err(e) => errors.insert("match_type", e.to_string()),
        }
        let text = |s: &str| if s.trim().is_empty() { Value::Null } else { json!(s.trim()) };
        m.insert("match_string".into(), text(&self.match_string));
        m.insert("trap_oid".into(), text(&self.trap_oid));
        for (field, value) in [("prod_handling", &self.prod_handling), ("dev_handling", &self.dev_handling)] {
            m.insert(field.into(), json!(value.trim()));
        }
        m.insert("team_assignment".into(), json!(self.team_assignment.trim()));
        m.insert("is_active".into(), json!(self.is_active.is_some()));
        let flap = [("flap_threshold", &self.flap_threshold), ("flap_window_secs", &self.flap_window_secs)];
        let flap = flap.into_iter().filter_map(|(field, text)| Some((field, text.as_ref()?, true)));
        for (field, text, optional) in
            [("syslog_severity", &self.syslog_severity, true), ("priority", &self.priority, false)]
                .into_iter()
                .chain(flap)
        {
            match number(field, text, optional) {
                Ok(v) => {
                    m.insert(field.into(), v);
                }
                Err(e) => errors.insert(field, e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let parsed = serde_json::from_value::<RuleDraft>(Value::Object(m)).map_err(|e| e.to_string());
        match parsed.map(|d| d.parse()) {
            Ok(Ok(valid)) => return Ok(valid),
            Ok(Err(e)) => errors.insert(e.field(), e.to_string()),
            Err(e) => errors.insert("form", e),
        }
        Err(errors)
    }

    fn reason(&self) -> Option<String> {
        Some(self.reason.trim().to_owned()).filter(|r| !r.is_empty())
    }

    /// The flap limit as typed, when both fields hold a number (for the hint's example).
    fn flap_limit(&self) -> Option<(i32, i32)> {
        let n = |t: &Option<String>| t.as_deref()?.trim().parse::<i32>().ok();
        Some((n(&self.flap_threshold)?, n(&self.flap_window_secs)?))
    }
}

/// A whole number from a form field; empty is `null` when `optional`.
fn number(field: &str, text: &str, optional: bool) -> Result<Value, String> {
    let t = text.trim();
    if t.is_empty() && optional {
        return Ok(Value::Null);
    }
    t.parse::<i32>().map(Value::from).map_err(|_| format!("{field}: must be a whole number"))
}

/// A new rule's form: the table's defaults where the query string (the unhandled-events
/// page's "create a rule from this" link: `match_string=…`) leaves a field empty.
fn prefilled(mut f: RuleForm) -> RuleForm {
    let default = |v: &mut String, d: &str| {
        if v.trim().is_empty() {
            *v = d.to_owned();
        }
    };
    default(&mut f.match_type, MatchType::Contains.as_str());
    default(&mut f.priority, "100");
    default(&mut f.prod_handling, "Page_and_ticket");
    default(&mut f.dev_handling, "Ignore");
    f.is_active = Some("on".into());
    f
}

#[derive(Template)]
#[template(path = "rules_form.html")]
struct FormPage {
    page: Page,
    /// The rule edited; `None`: a new rule.
    rule: Option<Rule>,
    form: RuleForm,
    errors: FieldErrors,
    /// The tester's picker: the newest audited events.
    recent: Vec<EventAuditRow>,
    tester: Option<TesterView>,
    /// The rule's newest matches (editing only), and how many there are in all.
    matches: Vec<EventAuditRow>,
    matches_total: u64,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.rule {
            Some(r) => format!("/rules/{}", r.id),
            None => "/rules/new".into(),
        }
    }

    fn selected(&self, event_id: &str) -> bool {
        self.form.event_id == event_id
    }
}

/// What the tester found, as the panel shows it.
struct TesterView {
    /// The event could not be used (not JSON, refused by the ingestor's checks).
    error: Option<String>,
    report: Option<RuleTestReport>,
    /// The id the draft has in the report.
    draft_id: i32,
    /// Set when the draft itself is invalid: it was left out of the test.
    draft_left_out: bool,
    /// Rules skipped beyond those listed.
    more_skipped: usize,
}

/// Skipped rules the panel lists (with none matching, every rule is skipped).
const SKIPPED_SHOWN: usize = 50;

impl TesterView {
    fn is_draft(&self, id: &i32) -> bool {
        *id == self.draft_id
    }
}

/// The page's data besides the form: the picker's events, the rule's matches.
async fn form_page(
    state: &WebState,
    session: &Session,
    rule: Option<Rule>,
    form: RuleForm,
    errors: FieldErrors,
    tester: Option<TesterView>,
) -> FormPage {
    // The last day only: the count that comes with a search stays small on a big audit.
    let since = chrono::Utc::now() - chrono::Duration::hours(PICKER_HOURS);
    // The picker shows no total: count no further than the page (an exact count of a busy
    // day took 250 ms on PostgreSQL with a million audit rows).
    let cap = Some(u64::from(RECENT));
    let newest =
        EventAuditFilter { start: Some(since), limit: RECENT, count_limit: cap, ..EventAuditFilter::default() };
    let recent = state.store.search_event_audit(&newest).await.map(|p| p.rows).unwrap_or_default();
    let (matches, matches_total) = match &rule {
        Some(r) => {
            let f = EventAuditFilter { rule_id: Some(r.id), limit: RECENT, ..EventAuditFilter::default() };
            state.store.search_event_audit(&f).await.map(|p| (p.rows, p.total)).unwrap_or_default()
        }
        None => (Vec::new(), 0),
    };
    let title = match &rule {
        Some(r) => format!("Rule {}", r.id),
        None => "New rule".into(),
    };
    FormPage { page: session.page(title, "/rules"), rule, form, errors, recent, tester, matches, matches_total }
}

/// The event the tester runs on: the picked audit row's, else the pasted JSON. The picked
/// event's JSON goes into the text area, so that it can be edited and tested again.
async fn tester_event(state: &WebState, form: &mut RuleForm) -> Result<mutt_core::Event, String> {
    let picked = form.event_id.trim().to_owned();
    if !picked.is_empty() {
        let f = EventAuditFilter { event_id: Some(picked), limit: 1, ..EventAuditFilter::default() };
        let page = state.store.search_event_audit(&f).await.map_err(|e| ApiError::from(e).message().to_owned())?;
        let row = page.rows.into_iter().next().ok_or("the picked event is no longer in the audit")?;
        let raw = row.raw_message.ok_or("the picked event's audit row has no message")?;
        let value: Value = serde_json::from_str(&raw).map_err(|e| format!("the audited message is not JSON: {e}"))?;
        form.event_json = serde_json::to_string_pretty(&value).unwrap_or(raw);
        form.event_id.clear();
    }
    let value: Value =
        serde_json::from_str(form.event_json.trim()).map_err(|e| format!("the event is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("the event must be a JSON object".into());
    };
    example_event(fields).map_err(|e| e.message().to_owned())
}

/// Runs the tester: the stored active rules with the draft in place of rule `id` (or added,
/// for a new rule), or without it when it does not parse.
async fn run_tester(state: &WebState, id: Option<i32>, form: &mut RuleForm, draft: Option<&ValidRule>) -> TesterView {
    let draft_id = id.unwrap_or(DRAFT_ID);
    let mut view = TesterView { error: None, report: None, draft_id, draft_left_out: draft.is_none(), more_skipped: 0 };
    let event = match tester_event(state, form).await {
        Ok(e) => e,
        Err(e) => {
            view.error = Some(e);
            return view;
        }
    };
    let mut snapshot = match state.store.load_rules().await {
        Ok(s) => s,
        Err(e) => {
            view.error = Some(ApiError::from(e).message().to_owned());
            return view;
        }
    };
    snapshot.rules.retain(|r| r.id != draft_id);
    if let Some(d) = draft {
        // Tested as active even when the form says inactive: the point is to see it match.
        let mut rule = d.to_rule(draft_id);
        rule.is_active = true;
        snapshot.rules.push(rule);
    }
    let mut report = test_event(&RuleSet::compile(snapshot), &event);
    view.more_skipped = report.not_matched.len().saturating_sub(SKIPPED_SHOWN);
    report.not_matched.truncate(SKIPPED_SHOWN);
    view.report = Some(report);
    view
}

async fn new_form(State(state): State<Arc<WebState>>, session: Session, Query(q): Query<RuleForm>) -> Response {
    let form = prefilled(q);
    render(&form_page(&state, &session, None, form, FieldErrors::default(), None).await)
}

async fn submit_new(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(mut form): Form<RuleForm>,
) -> Response {
    let draft = form.draft(None);
    if form.action == "test" {
        let tester = run_tester(&state, None, &mut form, draft.as_ref().ok()).await;
        let errors = draft.err().unwrap_or_default();
        return render(&form_page(&state, &session, None, form, errors, Some(tester)).await);
    }
    let result = match draft {
        Ok(valid) => create(&state, &caller, &valid, form.reason()).await.map_err(field_errors),
        Err(errors) => Err(errors),
    };
    match result {
        Ok(id) => {
            session.flash_ok(format!("Rule {id} created."));
            Redirect::to(&format!("/rules/{id}")).into_response()
        }
        Err(errors) => {
            let page = form_page(&state, &session, None, form, errors, None).await;
            (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
        }
    }
}

/// An API failure as the form shows it: next to its field, or above the form.
fn field_errors(e: ApiError) -> FieldErrors {
    let field = e.field().filter(|f| RULE_FIELDS.contains(f)).unwrap_or("form");
    let mut errors = FieldErrors::default();
    errors.insert(field, e.message());
    errors
}

/// The stored rule `id` (a path segment), or the page saying there is none.
async fn stored(state: &WebState, session: &Session, id: &str) -> Result<Rule, Response> {
    let found = match id.parse::<i32>() {
        Ok(id) => state.store.get_rule(id).await.map_err(ApiError::from),
        Err(_) => Ok(None),
    };
    match found {
        Ok(Some(rule)) => Ok(rule),
        Ok(None) => Err(failure(session, "Rules", "/rules", &ApiError::not_found(format!("There is no rule {id}.")))),
        Err(e) => Err(failure(session, "Rules", "/rules", &e)),
    }
}

async fn edit_form(State(state): State<Arc<WebState>>, session: Session, Path(id): Path<String>) -> Response {
    let rule = match stored(&state, &session, &id).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let form = RuleForm::of(&draft_of(&rule));
    render(&form_page(&state, &session, Some(rule), form, FieldErrors::default(), None).await)
}

async fn submit_edit(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Path(id): Path<String>,
    Form(mut form): Form<RuleForm>,
) -> Response {
    let rule = match stored(&state, &session, &id).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let current = draft_of(&rule);
    let draft = form.draft(Some(&current));
    if form.action == "test" {
        let tester = run_tester(&state, Some(rule.id), &mut form, draft.as_ref().ok()).await;
        let errors = draft.err().unwrap_or_default();
        return render(&form_page(&state, &session, Some(rule), form, errors, Some(tester)).await);
    }
    let result = match draft {
        Ok(valid) => {
            let fields = changed_fields(&current, &valid);
            if fields.is_empty() {
                session.flash_ok(format!("Rule {} is unchanged.", rule.id));
                return Redirect::to(&format!("/rules/{}", rule.id)).into_response();
            }
            replace(&state, &caller, rule.id, &valid, &fields, form.reason()).await.map_err(field_errors)
        }
        Err(errors) => Err(errors),
    };
    match result {
        Ok(_) => {
            session.flash_ok(format!("Rule {} saved.", rule.id));
            Redirect::to(&format!("/rules/{}", rule.id)).into_response()
        }
        Err(errors) => {
            let page = form_page(&state, &session, Some(rule), form, errors, None).await;
            (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
        }
    }
}

/// The rule fields whose value differs (what the config-audit row records).
fn changed_fields(old: &RuleDraft, new: &RuleDraft) -> Vec<String> {
    let (old, new) = (json!(old), json!(new));
    let names = old.as_object().into_iter().chain(new.as_object()).flat_map(|m| m.keys().cloned());
    let mut fields: Vec<String> = names.filter(|k| old.get(k) != new.get(k)).collect();
    fields.sort();
    fields.dedup();
    fields
}

#[derive(Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    reason: String,
}

async fn submit_deactivate(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let rule = match stored(&state, &session, &id).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let reason = Some(f.reason.trim().to_owned()).filter(|r| !r.is_empty());
    match deactivate(&state, &caller, rule.id, reason).await {
        Ok(()) => session.flash_ok(format!("Rule {} deactivated.", rule.id)),
        Err(e) => session.flash_error(format!("Rule {} was not deactivated: {}", rule.id, e.message())),
    }
    Redirect::to(&format!("/rules/{}", rule.id)).into_response()
}
