//! Error collection and the field checks shared by the native and the Tencent readers.

use std::collections::BTreeMap;

use super::value::Value;
use super::{SpecError, SpecWarning, parse_duration, parse_size};
use crate::model::{Catalog, Command, Image, InputMapping, Resources};

/// Longest accepted per-attempt timeout: 7 days (Tencent's `Timeout` maximum, 604800 s).
pub(crate) const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
/// Largest `cpus` value of explicit resources.
pub(crate) const MAX_CPUS: f64 = 1024.0;

/// The placeholders a redirect URL may use.
pub(crate) const PLACEHOLDERS: &[&str] = &[
    "BATCH_JOB_ID",
    "BATCH_TASK_NAME",
    "BATCH_TASK_INSTANCE_INDEX",
    "BATCH_TASK_INSTANCE_ATTEMPT",
    "BATCH_TASK_INSTANCE_ITEM",
];

/// Errors and warnings collected while walking a document.
#[derive(Debug, Default)]
pub(crate) struct Diag {
    pub errors: Vec<SpecError>,
    pub warnings: Vec<SpecWarning>,
    /// The instance types names are checked against.
    pub catalog: Catalog,
}

impl Diag {
    pub fn with_catalog(catalog: &Catalog) -> Diag {
        Diag {
            catalog: catalog.clone(),
            ..Diag::default()
        }
    }

    pub fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(SpecError {
            path: path.to_string(),
            message: message.into(),
            hint: None,
        });
    }

    pub fn err_hint(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(SpecError {
            path: path.to_string(),
            message: message.into(),
            hint,
        });
    }

    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(SpecWarning {
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub fn expected(&mut self, path: &str, what: &str, got: &Value) {
        self.err(path, format!("expected {what}, got {}", got.describe()));
    }
}

/// `base.key`, or `key` at the top.
pub(crate) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// `base[i]`.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub(crate) fn suggest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, f64, &'a str)> = None;
    for c in candidates {
        let cl = c.to_ascii_lowercase();
        let d = if cl == lower {
            0
        } else {
            strsim::damerau_levenshtein(&lower, &cl)
        };
        let jw = strsim::jaro_winkler(&lower, &cl);
        let limit = (word.chars().count().max(c.chars().count()) / 3).max(1);
        let better = best.is_none_or(|(bd, bjw, _)| d < bd || (d == bd && jw > bjw));
        if d <= limit && better {
            best = Some((d, jw, c));
        }
    }
    best.map(|(_, _, c)| c)
}

pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    suggest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// A mapping being read: remembers its path and reports unknown keys.
pub(crate) struct Obj<'a> {
    pub path: String,
    pub entries: &'a [(String, Value)],
}

impl<'a> Obj<'a> {
    /// Views `v` as a mapping, reporting an error if it is something else.
    pub fn new(v: &'a Value, path: &str, d: &mut Diag) -> Option<Obj<'a>> {
        match v {
            Value::Map(entries) => Some(Obj {
                path: path.to_string(),
                entries,
            }),
            other => {
                d.expected(path, "a mapping", other);
                None
            }
        }
    }

    /// The value of `key`; null counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Null))
    }

    /// True when `key` is written (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Reports every key that is neither in `known` nor in `ignored` (which the caller handles).
    pub fn check_keys(&self, known: &[&str], d: &mut Diag) {
        for (k, _) in self.entries {
            if !known.contains(&k.as_str()) {
                // Suggest only fields that are not written already.
                let absent = known.iter().copied().filter(|c| !self.has(c));
                let hint = did_you_mean(k, absent);
                d.err_hint(&self.path(k), format!("unknown field `{k}`"), hint);
            }
        }
    }

    /// Reports a missing required key.
    pub fn require(&self, key: &str, d: &mut Diag) -> Option<&'a Value> {
        let v = self.get(key);
        if v.is_none() {
            d.err(&self.path(key), format!("missing required field `{key}`"));
        }
        v
    }
}

pub(crate) fn string<'v>(v: &'v Value, path: &str, d: &mut Diag) -> Option<&'v str> {
    match v {
        Value::Str(s) => Some(s),
        other => {
            d.expected(path, "a string", other);
            None
        }
    }
}

/// A scalar as text (strings as they are; numbers and booleans as written by YAML's resolution).
pub(crate) fn scalar_string(v: &Value, path: &str, d: &mut Diag) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(format!("{f:?}")),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            d.expected(path, "a string", other);
            None
        }
    }
}

/// An integer in `min..=max`.
pub(crate) fn int(v: &Value, path: &str, min: i128, max: i128, d: &mut Diag) -> Option<i128> {
    match v {
        Value::Int(i) if (min..=max).contains(i) => Some(*i),
        Value::Int(i) => {
            d.err(path, format!("must be between {min} and {max}, got {i}"));
            None
        }
        other => {
            d.expected(path, "an integer", other);
            None
        }
    }
}

pub(crate) fn int_u32(v: &Value, path: &str, min: u32, max: u32, d: &mut Diag) -> Option<u32> {
    int(v, path, i128::from(min), i128::from(max), d).and_then(|i| u32::try_from(i).ok())
}

/// Checks a job/task/network/environment name: 1–60 characters of `[A-Za-z0-9._-]`.
pub(crate) fn name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty".to_string());
    }
    let n = s.chars().count();
    if n > 60 {
        return Some(format!("is {n} characters long; at most 60 are allowed"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "`{s}` contains {c:?}; only A-Z a-z 0-9 . _ - are allowed"
        ));
    }
    None
}

pub(crate) fn name(v: &Value, path: &str, what: &str, d: &mut Diag) -> Option<String> {
    let s = string(v, path, d)?;
    match name_problem(s) {
        Some(p) => {
            d.err(path, format!("invalid {what}: {p}"));
            None
        }
        None => Some(s.to_string()),
    }
}

pub(crate) fn size(v: &Value, path: &str, d: &mut Diag) -> Option<u64> {
    match v {
        Value::Int(i) if *i >= 0 => match u64::try_from(*i) {
            Ok(n) => Some(n),
            Err(_) => {
                d.err(path, format!("size {i} is too large"));
                None
            }
        },
        Value::Int(i) => {
            d.err(path, format!("size {i} must not be negative"));
            None
        }
        Value::Str(s) => match parse_size(s) {
            Ok(n) => Some(n),
            Err(e) => {
                d.err(path, e);
                None
            }
        },
        other => {
            d.expected(path, "a size such as 512MiB or 1GiB", other);
            None
        }
    }
}

/// A positive duration of at most 7 days, in milliseconds; a bare integer is seconds.
pub(crate) fn timeout(v: &Value, path: &str, d: &mut Diag) -> Option<u64> {
    duration(v, path, MAX_TIMEOUT_MS, "7 days (7d, 168h, 604800s)", d)
}

/// Longest accepted job deadline: 30 days.
pub(crate) const MAX_JOB_TIMEOUT_MS: u64 = 30 * 24 * 3600 * 1000;

/// A job's `timeout`: a positive duration of at most 30 days.
pub(crate) fn job_timeout(v: &Value, path: &str, d: &mut Diag) -> Option<u64> {
    duration(v, path, MAX_JOB_TIMEOUT_MS, "30 days (30d, 720h)", d)
}

/// A positive duration of at most `max_ms` (`max_text` says it to people), in milliseconds; a
/// bare integer is seconds.
pub(crate) fn duration(
    v: &Value,
    path: &str,
    max_ms: u64,
    max_text: &str,
    d: &mut Diag,
) -> Option<u64> {
    let what = path.rsplit('.').next().unwrap_or(path);
    let ms = match v {
        Value::Int(i) if *i >= 0 => u64::try_from(*i)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .unwrap_or(u64::MAX),
        Value::Int(i) => {
            d.err(path, format!("{what} {i} must not be negative"));
            return None;
        }
        Value::Str(s) => match parse_duration(s) {
            Ok(ms) => ms,
            Err(e) => {
                d.err(path, e);
                return None;
            }
        },
        other => {
            d.expected(path, "a duration such as 90s, 10m or 24h", other);
            return None;
        }
    };
    if ms == 0 {
        d.err(path, format!("{what} must be greater than zero"));
        None
    } else if ms > max_ms {
        d.err(path, format!("{what} must be at most {max_text}"));
        None
    } else {
        Some(ms)
    }
}

/// CPUs as a number > 0 and <= 1024, in thousandths.
pub(crate) fn cpus(v: &Value, path: &str, d: &mut Diag) -> Option<u32> {
    let f = match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        other => {
            d.expected(path, "a number of CPUs such as 0.5 or 2", other);
            return None;
        }
    };
    if !(f > 0.0 && f <= MAX_CPUS) {
        d.err(
            path,
            format!("cpus must be greater than 0 and at most {MAX_CPUS}, got {f}"),
        );
        return None;
    }
    let milli = (f * 1000.0).round();
    if (milli - f * 1000.0).abs() > 1e-6 || milli < 1.0 {
        d.err(path, format!("cpus {f} is finer than 0.001 CPU"));
        return None;
    }
    Some(milli as u32)
}

pub(crate) fn command(v: &Value, path: &str, d: &mut Diag) -> Option<Command> {
    match v {
        Value::Str(s) => {
            if s.trim().is_empty() {
                d.err(path, "command must not be empty");
                None
            } else {
                Some(Command::Shell(s.clone()))
            }
        }
        Value::Seq(items) => {
            if items.is_empty() {
                d.err(path, "command list must not be empty");
                return None;
            }
            let mut argv = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match scalar_string(item, &index(path, i), d) {
                    Some(s) => argv.push(s),
                    None => ok = false,
                }
            }
            if ok && argv.first().is_some_and(|a| a.is_empty()) {
                d.err(&index(path, 0), "the program name must not be empty");
                return None;
            }
            ok.then_some(Command::Argv(argv))
        }
        other => {
            d.expected(path, "a string or a list of strings", other);
            None
        }
    }
}

pub(crate) fn image(v: &Value, path: &str, d: &mut Diag) -> Option<Image> {
    let s = string(v, path, d)?;
    if s == "host" {
        return Some(Image::Host);
    }
    let ok_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@');
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let last_ok = s
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if s.is_empty() || s.len() > 512 || !s.chars().all(ok_char) || !first_ok || !last_ok {
        d.err_hint(
            path,
            format!("invalid image reference {s:?}"),
            Some("use `host` or a Docker image such as `alpine:3.20` or `registry.example.com/team/app@sha256:…`".to_string()),
        );
        return None;
    }
    Some(Image::Docker(s.to_string()))
}

pub(crate) fn env_name_problem(k: &str) -> Option<String> {
    let mut chars = k.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some(format!(
            "invalid environment variable name {k:?}: use [A-Za-z_][A-Za-z0-9_]*"
        ));
    }
    if k.starts_with("BATCH_") {
        return Some(format!(
            "environment variable `{k}` is reserved: names starting with BATCH_ are set by Kiln"
        ));
    }
    None
}

/// Checks one environment variable, returning its value.
pub(crate) fn env_entry(k: &str, v: &Value, key_path: &str, d: &mut Diag) -> Option<String> {
    let mut ok = true;
    if let Some(p) = env_name_problem(k) {
        d.err(key_path, p);
        ok = false;
    }
    let value = match v {
        Value::Null => {
            d.err(key_path, "expected a string, got null");
            None
        }
        other => scalar_string(other, key_path, d),
    };
    if let Some(val) = &value
        && val.contains('\0')
    {
        d.err(
            key_path,
            "environment values must not contain NUL characters",
        );
        return None;
    }
    if ok { value } else { None }
}

/// Validates a storage URL (`s3://`, `cos://`, `file://`).
pub(crate) fn url_problem(s: &str) -> Option<(String, Option<String>)> {
    let schemes = "use s3://BUCKET/PATH, cos://BUCKET-APPID.cos.REGION.myqcloud.com/PATH or file:///ABSOLUTE/PATH";
    if s.chars().any(char::is_control) {
        return Some(("URL must not contain control characters".into(), None));
    }
    if let Some(rest) = s.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or("");
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Some((
                format!("invalid S3 bucket name {bucket:?} in {s:?}"),
                Some("bucket names are 3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit".into()),
            ));
        }
        return None;
    }
    if let Some(rest) = s.strip_prefix("cos://") {
        let host = rest.split('/').next().unwrap_or("");
        let parsed = host.strip_suffix(".myqcloud.com").and_then(|h| {
            let (bucket_appid, region) = h.split_once(".cos.")?;
            let (bucket, appid) = bucket_appid.rsplit_once('-')?;
            let lower_digits = |x: &str| {
                !x.is_empty()
                    && x.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            (lower_digits(bucket)
                && !appid.is_empty()
                && appid.chars().all(|c| c.is_ascii_digit())
                && lower_digits(region))
            .then_some(())
        });
        if parsed.is_none() {
            return Some((
                format!("invalid COS URL {s:?}"),
                Some("expected cos://BUCKET-APPID.cos.REGION.myqcloud.com/PATH, e.g. cos://demo-1250000000.cos.ap-guangzhou.myqcloud.com/data/".into()),
            ));
        }
        return None;
    }
    if let Some(rest) = s.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Some((
                format!("invalid file URL {s:?}: it needs an absolute path and no host"),
                Some("write file:///shared/path/".into()),
            ));
        }
        if rest.split('/').any(|c| c == "..") {
            return Some((format!("file URL {s:?} must not contain `..`"), None));
        }
        return None;
    }
    let msg = match s.split_once("://") {
        Some((scheme, _)) => format!("unsupported storage URL scheme `{scheme}://` in {s:?}"),
        None => format!("expected a storage URL, got {s:?}"),
    };
    Some((msg, Some(schemes.to_string())))
}

pub(crate) fn url(v: &Value, path: &str, d: &mut Diag) -> Option<String> {
    let s = string(v, path, d)?;
    check_url(s, path, d)
}

pub(crate) fn check_url(s: &str, path: &str, d: &mut Diag) -> Option<String> {
    match url_problem(s) {
        Some((m, h)) => {
            d.err_hint(path, m, h);
            None
        }
        None => Some(s.to_string()),
    }
}

/// A stdout/stderr redirect: a prefix ending in `/`, or a full object URL with placeholders.
pub(crate) fn check_redirect(s: &str, path: &str, d: &mut Diag) -> Option<String> {
    let s = check_url(s, path, d)?;
    let mut ok = true;
    let mut rest = s.as_str();
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                if !PLACEHOLDERS.contains(&name) {
                    let hint = did_you_mean(name, PLACEHOLDERS.iter().copied()).or_else(|| {
                        Some(format!("known placeholders: {}", PLACEHOLDERS.join(", ")))
                    });
                    d.err_hint(path, format!("unknown placeholder `${{{name}}}`"), hint);
                    ok = false;
                }
                rest = &after[end + 1..];
            }
            None => {
                d.err(path, "unterminated placeholder `${`");
                return None;
            }
        }
    }
    if !s.ends_with('/') {
        // A full object URL needs an object key after the bucket (or host).
        let after_scheme = s.split_once("://").map(|(_, r)| r).unwrap_or("");
        let key = after_scheme.split_once('/').map(|(_, k)| k).unwrap_or("");
        if key.is_empty() {
            d.err_hint(
                path,
                format!("redirect {s:?} is neither a prefix nor an object URL"),
                Some("end a prefix with `/`, or give a full object name".into()),
            );
            return None;
        }
    }
    ok.then_some(s)
}

pub(crate) fn redirect(v: &Value, path: &str, d: &mut Diag) -> Option<String> {
    let s = string(v, path, d)?;
    check_redirect(s, path, d)
}

/// A local path (mapping target or output source): it may not escape the working directory.
/// Returns its normalised form (for duplicate detection) or `None` after reporting an error.
pub(crate) fn local_path(s: &str, path: &str, d: &mut Diag) -> Option<String> {
    if s.is_empty() {
        d.err(path, "path must not be empty");
        return None;
    }
    if s.contains('\0') {
        d.err(path, "path must not contain NUL characters");
        return None;
    }
    if s.contains("://") {
        d.err_hint(
            path,
            format!("expected a local path, got the URL {s:?}"),
            Some("a mapping goes from a storage URL to a local path".into()),
        );
        return None;
    }
    let absolute = s.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if absolute || parts.pop().is_none() {
                    d.err(
                        path,
                        format!("path {s:?} must not escape the working directory with `..`"),
                    );
                    return None;
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    Some(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

/// The explicit resources mapping `{cpus, memory, disk}`.
pub(crate) fn resources(v: &Value, path: &str, d: &mut Diag) -> Option<Resources> {
    let obj = Obj::new(v, path, d)?;
    obj.check_keys(&["cpus", "memory", "disk"], d);
    let n = d.errors.len();
    let mut r = Resources::default();
    if let Some(c) = obj.get("cpus") {
        r.millicpus = cpus(c, &obj.path("cpus"), d).unwrap_or(r.millicpus);
    }
    if let Some(m) = obj.get("memory") {
        r.memory = size(m, &obj.path("memory"), d).unwrap_or(0);
    }
    if let Some(m) = obj.get("disk") {
        r.disk = size(m, &obj.path("disk"), d).unwrap_or(0);
    }
    (d.errors.len() == n).then_some(r)
}

/// Looks `s` up in the instance type catalog.
pub(crate) fn instance_type(s: &str, path: &str, d: &mut Diag) -> Option<String> {
    if d.catalog.get(s).is_some() {
        return Some(s.to_string());
    }
    let catalog = d.catalog.clone();
    let names = catalog.names();
    let mut close: Vec<(usize, &str)> = catalog
        .names()
        .map(|n| (strsim::levenshtein(&s.to_ascii_uppercase(), n), n))
        .filter(|(dist, _)| *dist <= 3)
        .collect();
    close.sort();
    let hint = if close.is_empty() {
        format!(
            "known instance types: {}",
            names.collect::<Vec<_>>().join(", ")
        )
    } else {
        format!(
            "did you mean {}?",
            close
                .iter()
                .take(3)
                .map(|(_, n)| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    };
    d.err_hint(path, format!("unknown instance type `{s}`"), Some(hint));
    None
}

/// Tags: at most 10, non-empty keys.
pub(crate) fn check_tag_count(tags: &BTreeMap<String, String>, path: &str, d: &mut Diag) {
    if tags.len() > 10 {
        d.err(
            path,
            format!("at most 10 tags are allowed, got {}", tags.len()),
        );
    }
}

/// One of a fixed set of spellings.
pub(crate) fn one_of<T: Copy>(
    v: &Value,
    path: &str,
    choices: &[(&str, T)],
    d: &mut Diag,
) -> Option<T> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let expected = format!("one of {}", names.join(", "));
    let s = match v {
        Value::Str(s) => s,
        other => {
            d.expected(path, &expected, other);
            return None;
        }
    };
    if let Some((_, t)) = choices.iter().find(|(n, _)| n == s) {
        return Some(*t);
    }
    let hint = did_you_mean(s, names.iter().copied());
    d.err_hint(path, format!("expected {expected}, got {s:?}"), hint);
    None
}

/// One input mapping of either format: `source_key` (a storage URL) made available at
/// `target_key` (a local path). `targets` holds the normalised targets seen so far in the task
/// (with the path that claimed each), so two inputs to one target are refused.
pub(crate) fn input_mapping(
    m: &Obj<'_>,
    source_key: &str,
    target_key: &str,
    targets: &mut BTreeMap<String, String>,
    d: &mut Diag,
) -> Option<InputMapping> {
    let source = m
        .require(source_key, d)
        .and_then(|s| url(s, &m.path(source_key), d));
    let target = m.require(target_key, d).and_then(|t| {
        let tp = m.path(target_key);
        let s = string(t, &tp, d)?;
        let norm = local_path(s, &tp, d)?;
        if let Some(first) = targets.get(&norm) {
            d.err(
                &tp,
                format!("two inputs map to the same target {s:?} (see {first})"),
            );
            return None;
        }
        targets.insert(norm, tp);
        Some(s.to_string())
    });
    Some(InputMapping {
        source: source?,
        target: target?,
        profile: None,
    })
}
