//! Storage profiles (`/v1/storage-profiles`): create, list, show, delete.
//!
//! A profile is stored as JSON in `StorageProfileRecord::config_json` with its secret fields
//! (`secret_access_key`, `session_token`, `password`) sealed by the server's [`SecretBox`], each
//! bound to
//! `storage-profile/NAME/FIELD`. Reads answer them as `***`; only [`open`] opens them, for
//! the attempts that use the profile (`Driver::attempt_profiles`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use kiln_api::{ErrorBody, StorageProfile, StorageProfileList, StorageProfileSpec, code, paths};
use kiln_store::StorageProfileRecord;
use kiln_store::secrets::SecretBox;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{ApiError, Path, Shared, body as body_bytes, on_store};
use crate::driver::now_ms;
use crate::wire::rfc3339;

/// What `config_json` holds: the spec with its secret fields sealed.
#[derive(Serialize, Deserialize)]
struct Stored {
    kind: String,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    access_key_id: String,
    /// Sealed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    secret_access_key: String,
    /// Sealed.
    session_token: Option<String>,
    default: bool,
    /// `docker-registry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

fn aad(name: &str, field: &str) -> String {
    format!("storage-profile/{name}/{field}")
}

fn seal(secrets: &SecretBox, p: &StorageProfileSpec) -> Result<String, ApiError> {
    serde_json::to_string(&Stored {
        kind: p.kind.clone(),
        endpoint: p.endpoint.clone(),
        region: p.region.clone(),
        path_style: p.path_style,
        access_key_id: p.access_key_id.clone(),
        secret_access_key: if p.is_registry() {
            String::new()
        } else {
            secrets.seal(&p.secret_access_key, &aad(&p.name, "secret_access_key"))
        },
        session_token: p
            .session_token
            .as_ref()
            .map(|t| secrets.seal(t, &aad(&p.name, "session_token"))),
        default: p.default,
        server: p.server.clone(),
        username: p.username.clone(),
        password: p
            .password
            .as_ref()
            .map(|t| secrets.seal(t, &aad(&p.name, "password"))),
    })
    .map_err(ApiError::internal)
}

fn decode(r: &StorageProfileRecord) -> Result<Stored, ApiError> {
    serde_json::from_str(&r.config_json)
        .map_err(|e| ApiError::internal(format!("storage profile `{}` is unreadable: {e}", r.name)))
}

/// What reads show of a record: no secret, sealed or not.
fn answer(r: &StorageProfileRecord) -> Result<StorageProfile, ApiError> {
    let s = decode(r)?;
    Ok(StorageProfile {
        name: r.name.clone(),
        kind: s.kind,
        path_style: s.path_style.unwrap_or(s.endpoint.is_some()),
        endpoint: s.endpoint,
        region: s.region,
        secret_access_key: if s.secret_access_key.is_empty() {
            String::new()
        } else {
            "***".into()
        },
        access_key_id: s.access_key_id,
        session_token: s.session_token.map(|_| "***".into()),
        default: s.default,
        server: s.server,
        username: s.username,
        password: s.password.map(|_| "***".into()),
        created_at: rfc3339(r.created_at),
    })
}

/// The default profile among `records`: of several (two servers creating one at once, for a
/// moment), the first created, then by name, as [`create_profile`] keeps that one.
pub(crate) fn default_of(records: &[StorageProfileRecord]) -> Option<&StorageProfileRecord> {
    records
        .iter()
        .filter(|r| decode(r).is_ok_and(|s| s.default))
        .min_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)))
}

/// Whether `r` is a registry login (`docker-registry`) rather than object storage.
pub(crate) fn is_registry(r: &StorageProfileRecord) -> bool {
    decode(r).is_ok_and(|s| s.kind == kiln_api::REGISTRY_PROFILE_KIND)
}

/// The `docker-registry` profile among `records` whose `server` is registry `host` (as
/// [`kiln_api::image_registry`] reads an image reference); of several, the first by name.
pub(crate) fn registry_of<'a>(
    records: &'a [StorageProfileRecord],
    host: &str,
) -> Option<&'a StorageProfileRecord> {
    records
        .iter()
        .filter(|r| {
            decode(r).is_ok_and(|s| {
                s.kind == kiln_api::REGISTRY_PROFILE_KIND
                    && s.server
                        .as_deref()
                        .and_then(kiln_api::registry_host)
                        .as_deref()
                        == Some(host)
            })
        })
        .min_by(|a, b| a.name.cmp(&b.name))
}

/// A stored profile with its secrets opened (for one attempt, in memory).
pub(crate) fn open(
    secrets: &SecretBox,
    r: &StorageProfileRecord,
) -> Result<StorageProfileSpec, String> {
    let s: Stored = serde_json::from_str(&r.config_json).map_err(|e| e.to_string())?;
    let opened = |sealed: &str, field: &str| {
        secrets
            .open(sealed, &aad(&r.name, field))
            .map_err(|e| e.to_string())
    };
    Ok(StorageProfileSpec {
        name: r.name.clone(),
        kind: s.kind,
        endpoint: s.endpoint,
        region: s.region,
        path_style: s.path_style,
        access_key_id: s.access_key_id,
        secret_access_key: if s.secret_access_key.is_empty() {
            String::new()
        } else {
            opened(&s.secret_access_key, "secret_access_key")?
        },
        session_token: s
            .session_token
            .as_deref()
            .map(|t| opened(t, "session_token"))
            .transpose()?,
        default: s.default,
        server: s.server,
        username: s.username,
        password: s
            .password
            .as_deref()
            .map(|t| opened(t, "password"))
            .transpose()?,
    })
}

/// The storage profile routes; the caller adds the admin check.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_profiles, create_profile))
        .routes(routes!(show_profile, delete_profile))
}

/// `{name}`: a storage profile.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ProfilePath {
    /// The profile's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    name: String,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if !name.is_empty()
        && name.chars().count() <= 60
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(())
    } else {
        Err(ApiError::bad(format!("`{name}` is not a valid storage profile name")).field("name"))
    }
}

/// Store a storage profile. Its secret fields are sealed at rest and never answered; a name in
/// use is a conflict (delete it first), as is a second default profile.
#[utoipa::path(post, path = paths::STORAGE_PROFILES, request_body = StorageProfileSpec,
    responses(
        (status = 201, body = StorageProfile),
        (status = 400, description = "a field is invalid (the error names it, never a value)", body = ErrorBody),
        (status = 409, description = "the name is taken, or another profile is the default", body = ErrorBody)))]
pub(super) async fn create_profile(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<StorageProfile>), ApiError> {
    let bytes = body_bytes(b)?;
    // Parsed by hand: serde's messages may quote a value, and a value may be a secret.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad(format!(
            "invalid JSON body at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let spec = StorageProfileSpec::from_value(&value).map_err(|p| {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_SPEC, p.message).field(p.field)
    })?;
    let project = caller.project.clone();
    if spec.default {
        let mut records = on_store(&st, |s| s.list_storage_profiles()).await?;
        records.retain(|r| r.project == project);
        for r in &records {
            if decode(r)?.default {
                return Err(default_taken(&r.name));
            }
        }
    }
    let record = StorageProfileRecord {
        name: spec.name.clone(),
        config_json: seal(&st.secrets, &spec)?,
        created_at: now_ms(),
        project: project.clone(),
    };
    let shown = answer(&record)?;
    let created = on_store(&st, move |s| s.create_storage_profile(&record)).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!(
                "storage profile `{}` already exists; delete it first to replace it",
                spec.name
            ),
        )
        .field("name"));
    }
    if spec.default {
        // Two defaults created at once (here or on another server of the database) both pass
        // the check above; the later one of them (by creation, then name) takes itself back.
        let mut records = on_store(&st, |s| s.list_storage_profiles()).await?;
        records.retain(|r| r.project == project);
        if let Some(first) = default_of(&records)
            && first.name != spec.name
        {
            let winner = first.name.clone();
            let n = spec.name.clone();
            on_store(&st, move |s| s.delete_storage_profile(&n)).await?;
            return Err(default_taken(&winner));
        }
    }
    Ok((StatusCode::CREATED, Json(shown)))
}

fn default_taken(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        code::CONFLICT,
        format!(
            "storage profile `{name}` is the default already; delete it or create this one \
             with default: false"
        ),
    )
    .field("default")
}

/// Every storage profile, by name (secret fields as `***`).
#[utoipa::path(get, path = paths::STORAGE_PROFILES, responses((status = 200, body = StorageProfileList)))]
pub(super) async fn list_profiles(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<StorageProfileList>, ApiError> {
    let records = on_store(&st, |s| s.list_storage_profiles()).await?;
    let items = records
        .iter()
        .filter(|r| caller.sees(&r.project))
        .map(answer)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(StorageProfileList { items }))
}

/// A storage profile (secret fields as `***`).
#[utoipa::path(get, path = paths::STORAGE_PROFILE, params(ProfilePath),
    responses((status = 200, body = StorageProfile), (status = 404, body = ErrorBody)))]
pub(super) async fn show_profile(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(ProfilePath { name }): Path<ProfilePath>,
) -> Result<Json<StorageProfile>, ApiError> {
    check_name(&name)?;
    let n = name.clone();
    let record = on_store(&st, move |s| s.get_storage_profile(&n))
        .await?
        .filter(|r| caller.sees(&r.project))
        .ok_or_else(|| ApiError::not_found(format!("no storage profile `{name}`")))?;
    Ok(Json(answer(&record)?))
}

/// Delete a storage profile.
#[utoipa::path(delete, path = paths::STORAGE_PROFILE, params(ProfilePath),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_profile(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(ProfilePath { name }): Path<ProfilePath>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    let n = name.clone();
    let visible = on_store(&st, move |s| s.get_storage_profile(&n))
        .await?
        .is_some_and(|r| caller.sees(&r.project));
    let n = name.clone();
    if visible && on_store(&st, move |s| s.delete_storage_profile(&n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no storage profile `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stored_form_seals_secrets_and_opens_back() {
        let b = SecretBox::from_key(&[3; 32]);
        let spec = StorageProfileSpec::from_value(&serde_json::json!({
            "name": "lab", "kind": "s3", "endpoint": "http://127.0.0.1:9000",
            "access_key_id": "AKID", "secret_access_key": "TOPSECRET", "session_token": "TOK"
        }))
        .unwrap();
        let record = StorageProfileRecord {
            name: "lab".into(),
            config_json: seal(&b, &spec).unwrap(),
            created_at: 1,
            project: "default".into(),
        };
        assert!(!record.config_json.contains("TOPSECRET"));
        assert!(!record.config_json.contains("TOK\""));
        let shown = serde_json::to_string(&answer(&record).unwrap()).unwrap();
        assert!(!shown.contains("TOPSECRET") && shown.contains("***"));
        assert!(answer(&record).unwrap().path_style);
        assert_eq!(open(&b, &record).unwrap(), spec);
        // Moved under another name: does not open.
        let moved = StorageProfileRecord {
            name: "other".into(),
            ..record
        };
        assert!(open(&b, &moved).is_err());
    }

    #[test]
    fn registry_logins_seal_their_password() {
        let b = SecretBox::from_key(&[4; 32]);
        let spec = StorageProfileSpec::from_value(&serde_json::json!({
            "name": "ccr", "kind": "docker-registry", "server": "ccr.ccs.tencentyun.com",
            "username": "robot", "password": "PA55WORD"
        }))
        .unwrap();
        let record = StorageProfileRecord {
            name: "ccr".into(),
            config_json: seal(&b, &spec).unwrap(),
            created_at: 1,
            project: "default".into(),
        };
        assert!(!record.config_json.contains("PA55WORD"));
        let shown = answer(&record).unwrap();
        assert_eq!(shown.password.as_deref(), Some("***"));
        assert_eq!(shown.username.as_deref(), Some("robot"));
        assert!(shown.secret_access_key.is_empty());
        assert_eq!(open(&b, &record).unwrap(), spec);
    }
}
