//! `muttd`: the CLI, configuration, secrets, and the wiring that starts MUTT's roles.
//!
//! - [`cli`]: the command line (clap); parsing is separate from running.
//! - [`config`]: defaults → TOML file → the original's env variables → `MUTT_*` variables.
//! - [`secrets`]: API keys and passwords from env variables or files.
//! - [`backend`]: embedded SQLite file or Redis + PostgreSQL, and what differs between them.
//! - [`app`]: connects the backends and starts the roles (in-process, also used by tests).
//! - [`commands`]: the operator commands (`migrate`, `send`, `status`).

pub mod app;
pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod rules_file;
pub mod secrets;
