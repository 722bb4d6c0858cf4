//! A small PostgreSQL admin client (knows nothing of bots): list databases with their
//! comments, create a database idempotently and safely under concurrency, record who owns it
//! in `COMMENT ON DATABASE`, drop one.
//!
//! # Why creating a database needs care
//! PostgreSQL has no `CREATE DATABASE IF NOT EXISTS`, and `CREATE DATABASE` cannot run in a
//! transaction, a `DO` block or a function. Two clients that check `pg_database` and then
//! create can both see "missing"; the loser gets `42P04 duplicate_database` or, when the
//! catalog insert races, `23505 unique_violation`. [`Client::ensure_database`] takes a
//! session-level advisory lock on the name first (so of two operators one creates and
//! comments, the other then finds it), still treats both codes as "exists" (for creators that
//! do not take the lock), retries `55006 object_in_use` a few times (someone connected to
//! `template1`, which `CREATE DATABASE` copies), then verifies the database is there.
//!
//! Identifiers are always quoted ([`quote_ident`]); values go as bind parameters, or through
//! [`quote_literal`] where PostgreSQL takes no parameters (`COMMENT ON`). Names longer than 63
//! bytes are refused rather than silently truncated by the server.

use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub const MAX_NAME_BYTES: usize = 63;

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// A name PostgreSQL would truncate or cannot hold.
    #[error("invalid database name {name:?}: {why}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// The server could not be reached, or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {message}")]
    Connect {
        /// host:port, without credentials.
        target: String,
        /// The driver's message.
        message: String,
    },
    /// A statement failed; `code` is the SQLSTATE when the server sent one.
    #[error("PostgreSQL: {message}{}", .code.as_ref().map(|c| format!(" (SQLSTATE {c})")).unwrap_or_default())]
    Sql {
        /// SQLSTATE, e.g. `42501` (insufficient privilege).
        code: Option<String>,
        /// The server's message.
        message: String,
    },
}

fn sql_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::Sql {
            code: Some(db.code().code().to_string()),
            message: db.message().to_string(),
        },
        None => Error::Sql {
            code: None,
            message: e.to_string(),
        },
    }
}

/// `"name"`, with `"` doubled: a safe identifier whatever the name holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with `'` doubled (the server runs with `standard_conforming_strings`, on since
/// 9.1, so backslashes are plain characters); NUL is dropped, PostgreSQL cannot store it.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\0', "").replace('\'', "''"))
}

/// Refuses names PostgreSQL would truncate (over 63 bytes), empty ones and NUL.
pub fn check_name(name: &str) -> Result<(), Error> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_BYTES {
        "it is longer than 63 bytes, which PostgreSQL silently truncates"
    } else if name.contains('\0') {
        "it contains NUL"
    } else {
        return Ok(());
    };
    Err(Error::Name {
        name: name.into(),
        why: why.into(),
    })
}

/// One database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// Its name.
    pub name: String,
    /// `COMMENT ON DATABASE`, if any.
    pub comment: Option<String>,
}

/// What [`Client::ensure_database`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// This call created it (and set its comment).
    Created,
    /// It existed already.
    Existed,
}

/// A server to connect to: a URL, and a password from elsewhere when the URL has none.
#[derive(Clone)]
pub struct Server {
    config: Config,
    target: String,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("Server")
            .field("target", &self.target)
            .finish()
    }
}

impl Server {
    /// Parses `postgres://user[:password]@host:port/db`; `password` is used when the URL has
    /// none (a spec's URL never carries one; the operator's password file does).
    pub fn new(url: &str, password: Option<&str>) -> Result<Server, Error> {
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            Error::Url(format!("{e} (expected postgres://USER@HOST:PORT/DB)"))
        })?;
        if config.get_password().is_none() {
            if let Some(p) = password {
                config.password(p);
            }
        }
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("botcluster");
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}");
        Ok(Server { config, target })
    }

    /// `host:port`, safe to show.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Connects (the connection runs on a tokio task until the client is dropped).
    pub async fn connect(&self) -> Result<Client, Error> {
        let (client, connection) =
            self.config
                .connect(NoTls)
                .await
                .map_err(|e| Error::Connect {
                    target: self.target.clone(),
                    message: e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string()),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        // A stuck lock or server never holds a pass forever.
        client
            .batch_execute("SET statement_timeout = '30s'")
            .await
            .map_err(sql_error)?;
        Ok(Client { inner: client })
    }
}

/// A connected session.
pub struct Client {
    inner: tokio_postgres::Client,
}

/// The advisory lock key of a database name: 64-bit FNV-1a of `pg-client/db:` + the name.
fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "pg-client/db:".bytes().chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// How often a `CREATE DATABASE` that found `template1` busy is tried again.
const BUSY_TEMPLATE_RETRIES: u32 = 10;

impl Client {
    /// Every database but the templates, with its comment, by name.
    pub async fn databases(&self) -> Result<Vec<Database>, Error> {
        let rows = self
            .inner
            .query(
                "SELECT datname::text, shobj_description(oid, 'pg_database') \
                 FROM pg_database WHERE NOT datistemplate ORDER BY datname",
                &[],
            )
            .await
            .map_err(sql_error)?;
        Ok(rows
            .iter()
            .map(|r| Database {
                name: r.get(0),
                comment: r.get(1),
            })
            .collect())
    }

    async fn exists(&self, name: &str) -> Result<bool, Error> {
        let row = self
            .inner
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(sql_error)?;
        Ok(row.is_some())
    }

    /// Creates database `name` unless it exists, and when this call created it, sets its
    /// comment to `comment` (the owner's mark).
    ///
    /// **Guarantees**: of any number of concurrent callers (in any processes) for one name,
    /// exactly one gets [`Ensured::Created`], and the comment is set before any of them
    /// returns `Existed`. Ends with the database present, or an error.
    ///
    /// **Errors**: [`Error::Name`] for a name PostgreSQL would truncate; [`Error::Sql`] with
    /// the server's SQLSTATE (`42501`: the role may not create databases).
    pub async fn ensure_database(&self, name: &str, comment: &str) -> Result<Ensured, Error> {
        check_name(name)?;
        let key = lock_key(name);
        self.inner
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .map_err(sql_error)?;
        let result = self.create_locked(name, comment).await;
        // Unlock on every path; a dropped connection releases it too.
        let unlocked = self
            .inner
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await;
        let ensured = result?;
        unlocked.map_err(sql_error)?;
        Ok(ensured)
    }

    async fn create_locked(&self, name: &str, comment: &str) -> Result<Ensured, Error> {
        if self.exists(name).await? {
            return Ok(Ensured::Existed);
        }
        let mut tries = 0;
        let created = loop {
            match self
                .inner
                .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
                .await
            {
                Ok(()) => break Ensured::Created,
                Err(e)
                    if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                        || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
                {
                    break Ensured::Existed
                }
                // template1 in use: a session is connected to it.
                Err(e)
                    if e.code() == Some(&SqlState::OBJECT_IN_USE)
                        && tries < BUSY_TEMPLATE_RETRIES =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
                }
                Err(e) => return Err(sql_error(e)),
            }
        };
        if created == Ensured::Created {
            self.inner
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(name),
                    quote_literal(comment)
                ))
                .await
                .map_err(sql_error)?;
        }
        if !self.exists(name).await? {
            return Err(Error::Sql {
                code: None,
                message: format!("database {name:?} is missing right after CREATE DATABASE"),
            });
        }
        Ok(created)
    }

    /// Drops database `name` if it exists (`WITH (FORCE)`: its sessions are ended); `true`
    /// when this call dropped it.
    pub async fn drop_database(&self, name: &str) -> Result<bool, Error> {
        check_name(name)?;
        if !self.exists(name).await? {
            return Ok(false);
        }
        match self
            .inner
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(name)
            ))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => Err(sql_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("acme"), "\"acme\"");
        assert_eq!(
            quote_ident("a\"; DROP DATABASE x; --"),
            "\"a\"\"; DROP DATABASE x; --\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "'a\\''b'");
    }

    #[test]
    fn long_names_are_refused_not_truncated() {
        assert!(check_name(&"a".repeat(63)).is_ok());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let s = Server::new("postgres://u:secret@127.0.0.1:5432/postgres", None).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
        assert_eq!(s.target(), "127.0.0.1:5432");
    }
}
