//! The vendored static files (`ui/assets/`, listed in its README), embedded in the binary and
//! served under `/ui/assets/<name>`. Pages link them with `?v=<version>` (a digest of every
//! file), so browsers may cache them for a year: a new build changes the URL.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

/// (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    ("mutt.css", "text/css; charset=utf-8", include_bytes!("assets/mutt.css")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/htmx.min.js")),
];

/// A short digest of all files (FNV-1a): the cache-busting `?v=`.
pub(crate) fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (_, _, bytes) in FILES {
            for b in *bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    });
    &VERSION
}

pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, bytes)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], *bytes)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
