//! Benchmarks and crash-test helpers. The binaries:
//! - `mutt-queue-worker`: a queue consumer that records every message id it processed in a
//!   Redis set; the crash tests `kill -9` it mid-batch and count.
//! - `mutt-queue-bench`: push + lease + ack throughput through Redis at several batch sizes,
//!   next to `redis-benchmark`'s LPUSH ceiling on the same machine.
//! - `mutt-ingest-bench`: starts a private redis-server and a `muttd ingestor` process and
//!   drives it over HTTP (single events and batches; closed loop and fixed rate).
//! - `mutt-pipeline`: the whole pipeline end to end — as separate processes on Redis +
//!   PostgreSQL (`bench`, `chaos`, `soak`), or as one `muttd run` on the embedded backend (`embedded`).

pub mod cost;
pub mod embedded;
pub mod load;
pub mod null_server;
pub mod pipeline;
pub mod process;
pub mod raw_load;
pub mod report;
pub mod scenario;
pub mod soak;
