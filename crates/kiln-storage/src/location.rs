//! Storage locations by URL: `s3://`, `cos://`, `file://`.

use std::fmt;
use std::path::PathBuf;

/// Where an input comes from or an output goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// `s3://BUCKET/KEY` on AWS S3 or any S3-compatible server (see `StorageConfig`).
    S3 { bucket: String, key: String },
    /// `cos://BUCKET-APPID.cos.REGION.myqcloud.com/KEY` on Tencent COS, through its
    /// S3-compatible endpoint. `bucket` includes the `-APPID` suffix.
    Cos {
        bucket: String,
        region: String,
        key: String,
    },
    /// `file:///PATH` on a shared filesystem that every node mounts.
    File { path: PathBuf },
}

/// A URL that is not a valid storage location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid storage URL `{url}`: {message}")]
pub struct LocationError {
    /// The URL as given (with any user-info part replaced by `***`).
    pub url: String,
    pub message: String,
}

const COS_SUFFIX: &str = ".myqcloud.com";

impl Location {
    /// Parses `s3://BUCKET[/KEY]`, `cos://BUCKET-APPID.cos.REGION.myqcloud.com[/KEY]` or
    /// `file:///ABSOLUTE/PATH`. A key or path ending in `/` (or an empty key: the bucket root)
    /// is a prefix. Segments `.` and `..` and empty segments (`a//b`) are refused, and so are
    /// credentials inside the URL.
    pub fn parse(url: &str) -> Result<Location, LocationError> {
        let err = |message: String| LocationError {
            url: redact_userinfo(url),
            message,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(err(
                "expected SCHEME://…, one of s3://, cos://, file://".into()
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "s3" => {
                let (host, key) = split_host(rest);
                check_host(host).map_err(err)?;
                if host.is_empty() {
                    return Err(err(
                        "the bucket name is empty (expected s3://BUCKET/KEY)".into()
                    ));
                }
                check_bucket(host).map_err(err)?;
                check_segments(key).map_err(err)?;
                Ok(Location::S3 {
                    bucket: host.to_string(),
                    key: key.to_string(),
                })
            }
            "cos" => {
                let (host, key) = split_host(rest);
                check_host(host).map_err(err)?;
                if host.is_empty() {
                    return Err(err(
                        "the bucket is empty (expected cos://BUCKET-APPID.cos.REGION.myqcloud.com/KEY)"
                            .into(),
                    ));
                }
                let (bucket, region) = parse_cos_host(host).map_err(err)?;
                check_segments(key).map_err(err)?;
                Ok(Location::Cos {
                    bucket,
                    region,
                    key: key.to_string(),
                })
            }
            "file" => {
                let path = if let Some(p) = rest.strip_prefix("localhost/") {
                    format!("/{p}")
                } else {
                    rest.to_string()
                };
                if !path.starts_with('/') {
                    return Err(err(if path.is_empty() {
                        "the path is empty (expected file:///ABSOLUTE/PATH)".into()
                    } else {
                        "a relative file path (or a host name) is not allowed; expected file:///ABSOLUTE/PATH"
                            .into()
                    }));
                }
                if path.contains('\0') {
                    return Err(err("the path contains a NUL character".into()));
                }
                check_segments(&path[1..]).map_err(err)?;
                Ok(Location::File {
                    path: PathBuf::from(path),
                })
            }
            other => Err(err(format!(
                "unknown scheme `{other}://`; expected one of s3://, cos://, file://"
            ))),
        }
    }

    /// Whether this names a prefix (a "directory"): the key or path ends with `/`, or the key is
    /// empty (the bucket root).
    pub fn is_prefix(&self) -> bool {
        match self {
            Location::S3 { key, .. } | Location::Cos { key, .. } => {
                key.is_empty() || key.ends_with('/')
            }
            Location::File { path } => path.to_string_lossy().ends_with('/'),
        }
    }

    /// This location as a prefix, followed by `relative` (which uses `/` as separator).
    pub fn join(&self, relative: &str) -> Location {
        let relative = relative.trim_start_matches('/');
        let cat = |base: &str| {
            if base.is_empty() || base.ends_with('/') {
                format!("{base}{relative}")
            } else {
                format!("{base}/{relative}")
            }
        };
        match self {
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: cat(key),
            },
            Location::Cos {
                bucket,
                region,
                key,
            } => Location::Cos {
                bucket: bucket.clone(),
                region: region.clone(),
                key: cat(key),
            },
            Location::File { path } => Location::File {
                path: PathBuf::from(cat(&path.to_string_lossy())),
            },
        }
    }

    /// The location as a URL again (it never holds credentials).
    pub fn url(&self) -> String {
        match self {
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Location::Cos {
                bucket,
                region,
                key,
            } => format!("cos://{bucket}.cos.{region}{COS_SUFFIX}/{key}"),
            Location::File { path } => format!("file://{}", path.to_string_lossy()),
        }
    }

    /// The object key (empty for a bucket root); `None` for `file://`.
    pub fn key(&self) -> Option<&str> {
        match self {
            Location::S3 { key, .. } | Location::Cos { key, .. } => Some(key),
            Location::File { .. } => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl std::str::FromStr for Location {
    type Err = LocationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Location::parse(s)
    }
}

fn split_host(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((host, key)) => (host, key),
        None => (rest, ""),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.contains('@') {
        return Err("credentials in the URL are not allowed; use the AWS_* environment variables or Kiln's storage configuration".into());
    }
    Ok(())
}

fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.len() < 3 || bucket.len() > 63 {
        return Err(format!(
            "the bucket name `{bucket}` must be 3 to 63 characters long"
        ));
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(format!(
            "the bucket name `{bucket}` may hold only lowercase letters, digits, `-` and `.`"
        ));
    }
    Ok(())
}

fn parse_cos_host(host: &str) -> Result<(String, String), String> {
    let malformed =
        || format!("malformed COS host `{host}`; expected BUCKET-APPID.cos.REGION.myqcloud.com");
    let Some(stem) = host
        .to_ascii_lowercase()
        .strip_suffix(COS_SUFFIX)
        .map(str::to_string)
    else {
        return Err(malformed());
    };
    let Some((bucket, region)) = stem.split_once(".cos.") else {
        return Err(malformed());
    };
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("{}: bad region `{region}`", malformed()));
    }
    let appid_ok = bucket.rsplit_once('-').is_some_and(|(name, appid)| {
        !name.is_empty() && !appid.is_empty() && appid.chars().all(|c| c.is_ascii_digit())
    });
    if !appid_ok {
        return Err(format!(
            "{}: the bucket `{bucket}` must end in -APPID (digits)",
            malformed()
        ));
    }
    check_bucket(bucket)?;
    Ok((bucket.to_string(), region.to_string()))
}

/// Refuses `.`/`..` and empty segments (a trailing `/` is allowed: it marks a prefix).
fn check_segments(key: &str) -> Result<(), String> {
    let body = key.strip_suffix('/').unwrap_or(key);
    if body.is_empty() {
        return Ok(());
    }
    for seg in body.split('/') {
        match seg {
            "" => return Err("empty path segment (`//`)".into()),
            "." | ".." => return Err(format!("`{seg}` segments are not allowed")),
            _ => {}
        }
    }
    Ok(())
}

fn redact_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (host, tail) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((_, host)) = host.rsplit_once('@') {
            return format!("{scheme}://***@{host}{tail}");
        }
    }
    url.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        let e = Location::parse("s3://AKID:secret@bucket/x").unwrap_err();
        assert!(!e.to_string().contains("AKID"));
        assert!(!e.to_string().contains("secret"));
    }
}
