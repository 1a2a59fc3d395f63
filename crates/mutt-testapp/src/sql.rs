//! [`Site::rows`]: a test's own `SELECT` on either backend's database, for checking what
//! was written behind the code's back (audit columns the store's API does not return).

use crate::site::{BackendKind, Site};
use mutt_sqlite::rusqlite;

/// A row both databases can give: read alike from PostgreSQL and from SQLite.
pub trait SqlRow: Sized + Send + 'static {
    fn from_postgres(row: &tokio_postgres::Row) -> Self;
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! tuple_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t),+> SqlRow for ($($t,)+)
        where
            $($t: for<'a> tokio_postgres::types::FromSql<'a> + rusqlite::types::FromSql + Send + 'static),+
        {
            fn from_postgres(row: &tokio_postgres::Row) -> Self {
                ($(row.get::<_, $t>($i),)+)
            }

            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}

tuple_row!(A 0, B 1);
tuple_row!(A 0, B 1, C 2);
tuple_row!(A 0, B 1, C 2, D 3);

impl Site {
    /// The rows of `sql` (no parameters) on this site's database: its PostgreSQL, or its
    /// embedded data file.
    pub async fn rows<T: SqlRow>(&self, sql: &'static str) -> Vec<T> {
        match self.kind() {
            BackendKind::RedisPostgres => {
                let url = self.database_url().expect("a database URL");
                let (c, conn) =
                    tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
                tokio::spawn(conn);
                c.query(sql, &[]).await.expect("query").iter().map(T::from_postgres).collect()
            }
            BackendKind::Embedded => {
                let file = self.data_file().expect("a data file");
                let db = mutt_sqlite::Database::open(file, Default::default()).expect("open the data file");
                db.read(move |c| c.prepare(sql)?.query_map([], |r| T::from_sqlite(r))?.collect()).await.expect("query")
            }
        }
    }
}
