//! What the `/hosts` and `/teams` pages share: a form shown again when it was wrong, the
//! optional reason, a repeated hostname in an import, and the import's insert-then-answer
//! steps (templates: `host_import.html`).

use super::csv::{Checked, LineError};
use super::session::{Flash, Session};
use super::{Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::future::Future;

/// A list page with an import form: its frame, the import's text and its bad lines.
pub(super) trait ImportPage: Template {
    fn import_parts(&mut self) -> (&mut Page, &mut String, &mut Vec<LineError>);
}

/// The reason field, `None` when left empty.
pub(super) fn reason_of(r: &str) -> Option<String> {
    Some(r.trim().to_owned()).filter(|r| !r.is_empty())
}

/// The page shown again because a form was wrong, after `fill` put the form's state in:
/// 422, so that scripts and tests see it.
pub(super) fn again<P: Template>(page: Result<P, Response>, fill: impl FnOnce(&mut P)) -> Response {
    match page {
        Ok(mut p) => {
            fill(&mut p);
            (StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response()
        }
        Err(r) => r,
    }
}

/// An import line's hostname when an earlier line had it too (the message names that line);
/// otherwise it is remembered.
pub(super) fn repeated(seen: &mut HashMap<String, usize>, hostname: &str, line: usize) -> Result<(), String> {
    if let Some(first) = seen.get(hostname) {
        return Err(format!("{hostname} is also on line {first}"));
    }
    seen.insert(hostname.to_owned(), line);
    Ok(())
}

/// Adds the checked rows one by one when no line is wrong; a row that fails (only one
/// added meanwhile by someone else can) becomes its line's error. Tells the alerters once
/// when any went in. Returns how many did.
pub(super) async fn insert_rows<T, F, Fut>(
    state: &WebState,
    caller: &Caller,
    checked: &mut Checked<T>,
    mut insert: F,
) -> usize
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    if !checked.errors.is_empty() {
        return 0;
    }
    let mut imported = 0;
    for (line, row) in std::mem::take(&mut checked.rows) {
        match insert(row).await {
            Ok(()) => imported += 1,
            Err(message) => checked.error(line, message),
        }
    }
    if imported > 0 {
        caller.announce(state).await;
    }
    imported
}

/// The import's answer: with every line good a notice ("Imported N `what`.") and back to
/// the list `nav`; otherwise `page` again (422) with the text kept, the bad lines, and how
/// many rows went in before one failed.
pub(super) async fn import_answer<P: ImportPage>(
    session: &Session,
    nav: &str,
    what: &str,
    (text, errors, imported): (String, Vec<LineError>, usize),
    page: impl Future<Output = Result<P, Response>>,
) -> Response {
    if errors.is_empty() {
        session.flash_ok(format!("Imported {imported} {what}."));
        return Redirect::to(nav).into_response();
    }
    again(page.await, |p| {
        let (frame, csv, import_errors) = p.import_parts();
        if imported > 0 {
            frame.flashes.push(Flash { kind: "ok", text: format!("Imported {imported}.") });
        }
        (*csv, *import_errors) = (text, errors);
    })
}
