//! Sizes (`512MiB`, `1G`) and durations (`90s`, `1h30m`).

/// Parses `DIGITS[.DIGITS]` at the start of `s`; returns (mantissa, decimals, rest).
fn leading_decimal(s: &str) -> Option<(u128, u32, &str)> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (int_part, rest) = s.split_at(int_len);
    let (frac_part, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            after.split_at(n)
        }
        None => ("", rest),
    };
    if int_part.is_empty() {
        return None;
    }
    let mut mantissa: u128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(u128::from(b - b'0'))?;
    }
    let decimals = u32::try_from(frac_part.len()).ok()?;
    Some((mantissa, decimals, rest))
}

/// `mantissa / 10^decimals * unit`, if it is a whole number that fits.
fn scale(mantissa: u128, decimals: u32, unit: u128) -> Result<u128, &'static str> {
    let div = 10u128.checked_pow(decimals).ok_or("too many decimals")?;
    let product = mantissa.checked_mul(unit).ok_or("too large")?;
    if product % div != 0 {
        return Err("not a whole number");
    }
    Ok(product / div)
}

/// A size as people write it, exactly: `512MiB`, `1GiB`, `1536MiB`, `1000B`. It parses back.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Parses a size in bytes.
///
/// Accepted: a bare number of bytes (`1024`), or a number (decimals allowed: `1.5GiB`) followed
/// by a unit, case-insensitively, optionally after spaces: `B`; binary `KiB` `MiB` `GiB` `TiB`
/// (also `Ki` `Mi` `Gi` `Ti`) = 1024^n; decimal `K` `M` `G` `T` (also `KB` `MB` `GB` `TB`) =
/// 1000^n, as in Kubernetes and SI, so `1G` is 10^9 bytes and `1GiB` is 2^30. The result must be
/// a whole number of bytes that fits in a u64. Negative sizes and anything else are refused.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty size".to_string());
    }
    if t.starts_with('-') {
        return Err(format!("size `{t}` must not be negative"));
    }
    let bad = || {
        format!(
            "invalid size `{t}`: expected a number of bytes or a number with a unit \
             (B, KiB, MiB, GiB, TiB, K, M, G, T), e.g. 512MiB"
        )
    };
    let (mantissa, decimals, rest) = leading_decimal(t).ok_or_else(bad)?;
    let unit: u128 = match rest.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = scale(mantissa, decimals, unit).map_err(|e| match e {
        "not a whole number" => format!("size `{t}` is not a whole number of bytes"),
        _ => format!("size `{t}` is too large"),
    })?;
    u64::try_from(bytes).map_err(|_| format!("size `{t}` is too large"))
}

/// Parses a duration into milliseconds.
///
/// Accepted: a bare integer number of seconds (`90`), or one or more `NUMBER UNIT` parts, spaces
/// allowed between them (`1h30m`, `1h 30m`, `500ms`, `1.5s`), with units `ms`, `s`, `m`, `h`, `d`.
/// Each part may have decimals as long as the total is a whole number of milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".to_string());
    }
    if t.starts_with('-') {
        return Err(format!("duration `{t}` must not be negative"));
    }
    let bad = || {
        format!(
            "invalid duration `{t}`: expected e.g. 90s, 10m, 24h, 1h30m, 500ms \
             (units ms, s, m, h, d) or a bare number of seconds"
        )
    };
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = t
            .parse()
            .map_err(|_| format!("duration `{t}` is too large"))?;
        return secs
            .checked_mul(1000)
            .ok_or_else(|| format!("duration `{t}` is too large"));
    }
    let mut rest = t;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (mantissa, decimals, after) = leading_decimal(rest).ok_or_else(bad)?;
        let after = after.trim_start();
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let unit_ms: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        let part = scale(mantissa, decimals, unit_ms).map_err(|e| match e {
            "not a whole number" => format!("duration `{t}` is not a whole number of milliseconds"),
            _ => format!("duration `{t}` is too large"),
        })?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration `{t}` is too large"))?;
        rest = after.trim_start();
    }
    u64::try_from(total).map_err(|_| format!("duration `{t}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("1.2345B").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1 GiB x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90_000));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("24h"), Ok(86_400_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1.5s"), Ok(1500));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0.0001s").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
    }
}
