//! The CSV of the console's bulk imports (development hosts, device teams): RFC 4180 fields
//! (quotes, `""` inside quotes, commas and line breaks inside quotes), one record a line,
//! blank lines and `#` comment lines skipped, an optional header row. Every record keeps the
//! line it starts on, so that an import names the line at fault. A few dozen lines of our own
//! rather than a crate: the imports need nothing else of CSV.

use axum::Form;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// One record: the line it starts on (1-based) and its fields, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// A line that cannot be read at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LineError {
    pub line: usize,
    pub message: String,
}

/// The records of `text`; `header` (compared case-insensitively, fields trimmed) is skipped
/// when it is the first record. An unterminated quote is an error on the line it opened.
pub(crate) fn records(text: &str, header: &[&str]) -> Result<Vec<Record>, LineError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let (mut fields, mut field) = (Vec::new(), String::new());
        let (mut quoted, mut was_quoted) = (false, false);
        while let Some(c) = chars.next() {
            if c == '\n' {
                line += 1;
            }
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.trim().is_empty() => {
                    field.clear();
                    (quoted, was_quoted) = (true, true);
                }
                (false, ',') => fields.push(std::mem::take(&mut field)),
                (false, '\n') => break,
                (false, '\r') if chars.peek() == Some(&'\n') => {}
                (false, c) => field.push(c),
            }
        }
        if quoted {
            return Err(LineError { line: start, message: "a quoted field is not closed".into() });
        }
        fields.push(field);
        let fields: Vec<String> = fields.into_iter().map(|f| f.trim().to_owned()).collect();
        let blank = !was_quoted && fields.len() == 1 && fields[0].is_empty();
        let comment = !was_quoted && fields.first().is_some_and(|f| f.starts_with('#'));
        if blank || comment {
            continue;
        }
        let is_header = out.is_empty()
            && fields.len() == header.len()
            && fields.iter().zip(header).all(|(f, h)| f.eq_ignore_ascii_case(h));
        if !is_header {
            out.push(Record { line: start, fields });
        }
    }
    Ok(out)
}

/// Most records one import takes (a larger list is split, or loaded with `muttd`).
pub(crate) const MAX_RECORDS: usize = 10_000;

/// What an import found: the rows it can take (with their lines) or every line's problem.
/// An import with any problem takes nothing, so that fixing the listed lines and sending the
/// same text again is always right.
pub(crate) struct Checked<T> {
    pub rows: Vec<(usize, T)>,
    pub errors: Vec<LineError>,
}

impl<T> Default for Checked<T> {
    fn default() -> Self {
        Self { rows: Vec::new(), errors: Vec::new() }
    }
}

impl<T> Checked<T> {
    pub fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(LineError { line, message: message.into() });
    }
}

/// Reads `text` as records of exactly `header.len()` fields, each checked by `row` (which
/// also sees the line, for duplicate checks across lines); at most [`MAX_RECORDS`].
pub(crate) fn check<T>(
    text: &str,
    header: &[&str],
    mut row: impl FnMut(usize, Vec<String>) -> Result<T, String>,
) -> Checked<T> {
    let mut out = Checked::default();
    let records = match records(text, header) {
        Ok(r) => r,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    if records.is_empty() {
        out.error(1, "nothing to import");
    }
    if records.len() > MAX_RECORDS {
        out.error(1, format!("{} records; at most {MAX_RECORDS} at once", records.len()));
        return out;
    }
    for r in records {
        if r.fields.len() != header.len() {
            let expected = header.join(",");
            out.error(r.line, format!("expected {} field(s) ({expected}), found {}", header.len(), r.fields.len()));
            continue;
        }
        match row(r.line, r.fields) {
            Ok(v) => out.rows.push((r.line, v)),
            Err(e) => out.error(r.line, e),
        }
    }
    out
}

/// The text of an import form: the uploaded file (`file`, multipart) when one was chosen,
/// else the text area (`csv`; urlencoded or multipart).
pub(crate) struct ImportBody(pub String);

#[derive(serde::Deserialize)]
struct ImportForm {
    #[serde(default)]
    csv: String,
}

impl<S: Send + Sync> FromRequest<S> for ImportBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let multipart =
            req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"multipart/form-data"));
        if !multipart {
            let Form(f) = Form::<ImportForm>::from_request(req, state).await.map_err(IntoResponse::into_response)?;
            return Ok(Self(f.csv));
        }
        let mut parts = Multipart::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let (mut file, mut text) = (String::new(), String::new());
        while let Some(field) = parts.next_field().await.map_err(IntoResponse::into_response)? {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field.text().await.map_err(IntoResponse::into_response)?;
            match name.as_str() {
                "file" => file = value,
                "csv" => text = value,
                _ => {}
            }
        }
        Ok(Self(if file.trim().is_empty() { text } else { file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str, header: &[&str]) -> Vec<(usize, Vec<&'static str>)> {
        records(text, header)
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.fields.into_iter().map(|f| &*Box::leak(f.into_boxed_str())).collect()))
            .collect()
    }

    #[test]
    fn lines_fields_header_blanks_and_comments() {
        let text = "hostname,team_assignment\r\nr1, NetOps \n\n# a comment\nr2,Core\n";
        assert_eq!(
            fields(text, &["hostname", "team_assignment"]),
            [(2, vec!["r1", "NetOps"]), (5, vec!["r2", "Core"])]
        );
        // Not the header: kept.
        assert_eq!(fields("r1\nr2", &["hostname", "team_assignment"]), [(1, vec!["r1"]), (2, vec!["r2"])]);
        assert_eq!(fields("HOSTNAME\nr1", &["hostname"]), [(2, vec!["r1"])]);
    }

    #[test]
    fn quotes_escape_commas_quotes_and_line_breaks() {
        let text = "\"r,1\",\"say \"\"hi\"\"\"\n\"multi\nline\",x\nlast,y";
        assert_eq!(
            fields(text, &[]),
            [(1, vec!["r,1", "say \"hi\""]), (2, vec!["multi\nline", "x"]), (4, vec!["last", "y"])]
        );
    }

    #[test]
    fn an_unclosed_quote_names_its_line() {
        let e = records("ok\n\"open,x\nmore", &[]).unwrap_err();
        assert_eq!(e, LineError { line: 2, message: "a quoted field is not closed".into() });
    }

    #[test]
    fn empty_fields_are_kept_as_empty() {
        assert_eq!(fields("r1,\n,Core", &[]), [(1, vec!["r1", ""]), (2, vec!["", "Core"])]);
        assert_eq!(fields("\"\"", &[]), [(1, vec![""])]);
    }
}
