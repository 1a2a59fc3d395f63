//! The operator's console (no pages yet). Pages go here, one module per page (`overview`,
//! `rules`, ...), each with a `routes()` merged by [`routes`] into the router in `lib.rs`,
//! outside `/api`. They call the same store and queue functions as the API handlers, not the
//! API over HTTP. Templates go in `ui/templates/`. Vendored static assets (scripts, styles,
//! fonts: nothing is loaded from the internet, MUTT runs in closed networks) go in
//! `ui/assets/`, embedded in the binary with `include_bytes!` and listed with their version and
//! licence in `ui/assets/README.md`.

use crate::WebState;
use axum::Router;
use std::sync::Arc;

/// The console's routes (none yet).
pub(crate) fn routes() -> Router<Arc<WebState>> {
    Router::new()
}
