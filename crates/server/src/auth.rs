//! Bearer-token authentication: a random token created at first start in a 0600 file.

use std::io::Write;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// The token file's name inside the data directory.
pub const TOKEN_FILE: &str = "token";

/// Reads `<data_dir>/token`, creating it (mode 0600, 32 random bytes as hex) when absent.
/// An existing file readable or writable by group or others is refused (`PermissionDenied`).
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            refuse_if_shared(&path)?;
            return Ok(t.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(token)
}

/// Refuses a token file that others than its owner may read or write: whoever reads it holds
/// the API (and so what the operator may do with LXD).
fn refuse_if_shared(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} has mode {mode:04o}: others than its owner can read or change the API token; run `chmod 600 {}` (and rotate the token if others may have read it)",
                    path.display(),
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Rejects requests without `Authorization: Bearer <token>`.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if bool::from(t.as_bytes().ct_eq(state.token.as_bytes())) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is wrong; use the one in the server's data directory (file `token`) or BOTCLUSTER_TOKEN",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing `Authorization: Bearer <token>`; botctl reads the token from the server's data directory (file `token`), or set BOTCLUSTER_TOKEN",
        )
        .into_response(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_token_file_others_can_read_is_refused_and_a_private_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let created = load_or_create_token(dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create_token(dir.path()).unwrap(), created);
        for mode in [0o644, 0o640, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load_or_create_token(dir.path()).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
    }
}
