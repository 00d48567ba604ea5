//! Exact decimal numbers: counts and numeric ids never pass through a float.
//!
//! DynamoDB sends numbers as decimal strings of up to 38 digits; counts in the wild exceed
//! 2^53 and 2^64. [`normalize_decimal`] checks the syntax and puts the string in a canonical
//! form that both PostgreSQL `numeric` and JSON accept, so `12345678901234567890123` lands as
//! exactly that.

/// Largest exponent accepted. DynamoDB's own range is 1E-130..1E+126; PostgreSQL `numeric`
/// overflows far later, so anything inside this bound is safe to write.
const MAX_EXPONENT: i64 = 1000;
/// Longest digit string accepted (`numeric` allows 131072 digits; 1000 is plenty).
const MAX_DIGITS: usize = 1000;

/// Returns `s` as a canonical decimal (`-12.5`, `0.25`, `1.5e+30`), or `None` if it is not a
/// finite decimal number (`"n/a"`, `"NaN"`, `"1,000"`, empty) or lies outside the bounds.
///
/// Canonical means: no leading `+`, no leading zeros before the integer part, a `0` before a
/// bare fraction, no trailing `.`, lowercase `e`. Trailing fraction zeros are kept (`12.50`),
/// as `numeric` keeps the scale.
pub fn normalize_decimal(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let all_digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    let frac = frac.unwrap_or("");
    if int.is_empty() && frac.is_empty() || int.len() + frac.len() > MAX_DIGITS {
        return None;
    }
    let exp = match exponent {
        None => None,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 6 || !all_digits(digits) {
                return None;
            }
            let v: i64 = e.parse().ok()?;
            if v.abs() > MAX_EXPONENT {
                return None;
            }
            Some(v)
        }
    };
    let int = int.trim_start_matches('0');
    let mut out = String::with_capacity(s.len() + 2);
    if neg {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(e) = exp {
        out.push('e');
        if e >= 0 {
            out.push('+');
        }
        out.push_str(&e.to_string());
    }
    Some(out)
}

/// Returns a numeric id as exact integer text: `12345678901234567890` stays as it is, and an
/// integral value written with a fraction or exponent (`1.5e3`) is expanded (`1500`).
/// Returns the canonical decimal unchanged when it is not integral.
pub fn id_text(s: &str) -> Option<String> {
    let d = normalize_decimal(s)?;
    let (mantissa, exp) = match d.split_once('e') {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (d.as_str(), 0),
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp;
    if !(0..=64).contains(&point) {
        return Some(d);
    }
    let point = point as usize;
    if digits.len() < point {
        digits.push_str(&"0".repeat(point - digits.len()));
    }
    let (i, f) = digits.split_at(point);
    if !f.bytes().all(|c| c == b'0') {
        return Some(d);
    }
    let i = i.trim_start_matches('0');
    let i = if i.is_empty() { "0" } else { i };
    Some(if neg && i != "0" { format!("-{i}") } else { i.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_past_two_to_the_64_stay_exact() {
        assert_eq!(normalize_decimal("12345678901234567890123").as_deref(), Some("12345678901234567890123"));
    }

    #[test]
    fn numbers_are_put_in_a_form_postgres_and_json_accept() {
        assert_eq!(normalize_decimal("0012.50").as_deref(), Some("12.50"));
        assert_eq!(normalize_decimal("+.5").as_deref(), Some("0.5"));
        assert_eq!(normalize_decimal("5.").as_deref(), Some("5"));
        assert_eq!(normalize_decimal("-1.5E3").as_deref(), Some("-1.5e+3"));
        assert_eq!(normalize_decimal(" 7 ").as_deref(), Some("7"));
    }

    #[test]
    fn non_numbers_are_none() {
        for s in ["n/a", "", "NaN", "Infinity", "1,000", "1e", "--1", ".", "1e99999", "0x10", "1 2"] {
            assert_eq!(normalize_decimal(s), None, "{s}");
        }
    }

    #[test]
    fn numeric_ids_are_integer_text() {
        assert_eq!(id_text("12345678901234567890").as_deref(), Some("12345678901234567890"));
        assert_eq!(id_text("1.5e3").as_deref(), Some("1500"));
        assert_eq!(id_text("007").as_deref(), Some("7"));
        assert_eq!(id_text("1.25").as_deref(), Some("1.25"));
    }
}
