//! Cron expressions for workflow triggers, evaluated in UTC.
//!
//! [`Cron::parse`] accepts the standard five fields
//! `minute hour day-of-month month day-of-week` with `*`, numbers, ranges
//! (`a-b`), lists (`a,b,c`), steps (`*/n`, `a-b/n`, `a/n` meaning `a` to the
//! field's maximum), month names `JAN`–`DEC`, weekday names `SUN`–`SAT`
//! (case-insensitive; `7` is Sunday too) and the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly`.
//!
//! Day matching follows Vixie cron: when both day-of-month and day-of-week are
//! restricted (neither field starts with `*`), a day matches if *either*
//! matches; otherwise both must match.
//!
//! [`Cron::next_after`] finds the next matching whole minute strictly after an
//! instant, skipping whole months, days and hours that cannot match, so sparse
//! schedules such as `0 0 29 2 *` are answered in a handful of steps. The
//! calendar arithmetic uses Howard Hinnant's `days_from_civil` /
//! `civil_from_days` algorithms; no date crate is needed.

use std::fmt;

const MS_PER_MINUTE: u64 = 60_000;
const MINUTES_PER_DAY: u32 = 1_440;
/// How far ahead [`Cron::next_after`] looks: five years, counting up to two
/// leap days.
const SEARCH_DAYS: i64 = 5 * 365 + 2;

const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed cron expression: one bitset per field (bit `n` set means value
/// `n` matches) plus whether day-of-month / day-of-week were unrestricted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The original expression, trimmed (what `Display` prints).
    expr: String,
    /// Bits 0–59.
    minutes: u64,
    /// Bits 0–23.
    hours: u32,
    /// Bits 1–31.
    days_of_month: u32,
    /// Bits 1–12.
    months: u16,
    /// Bits 0–6, 0 = Sunday.
    days_of_week: u8,
    /// Day-of-month field started with `*`.
    dom_star: bool,
    /// Day-of-week field started with `*`.
    dow_star: bool,
}

/// Static description of one of the five fields.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value of the first entry in `names`.
    names_base: u32,
}

const MINUTE: FieldSpec = FieldSpec { name: "minute", min: 0, max: 59, names: &[], names_base: 0 };
const HOUR: FieldSpec = FieldSpec { name: "hour", min: 0, max: 23, names: &[], names_base: 0 };
const DAY_OF_MONTH: FieldSpec = FieldSpec { name: "day of month", min: 1, max: 31, names: &[], names_base: 0 };
const MONTH: FieldSpec = FieldSpec { name: "month", min: 1, max: 12, names: &MONTH_NAMES, names_base: 1 };
/// Day of week accepts 0–7; 7 is folded onto 0 (Sunday) after parsing.
const DAY_OF_WEEK: FieldSpec = FieldSpec { name: "day of week", min: 0, max: 7, names: &WEEKDAY_NAMES, names_base: 0 };

impl Cron {
    /// Parse a standard 5-field expression: minute hour day-of-month month
    /// day-of-week, or one of the `@` macros.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let trimmed = expr.trim();
        if let Some(bad) = trimmed.chars().find(|c| !c.is_ascii()) {
            return Err(format!("cron expression {trimmed:?} contains non-ASCII character {bad:?}"));
        }
        let body = if trimmed.starts_with('@') {
            match trimmed.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    return Err(format!(
                        "unknown cron macro {trimmed:?} (expected @yearly, @annually, \
                         @monthly, @weekly, @daily, @midnight or @hourly)"
                    ))
                }
            }
        } else {
            trimmed
        };

        let fields: Vec<&str> = body.split_ascii_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron expression {trimmed:?} has {} field{}, expected 5 \
                 (minute hour day-of-month month day-of-week)",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" }
            ));
        }

        let minutes = parse_field(fields[0], &MINUTE, trimmed)?;
        let hours = parse_field(fields[1], &HOUR, trimmed)?;
        let days_of_month = parse_field(fields[2], &DAY_OF_MONTH, trimmed)?;
        let months = parse_field(fields[3], &MONTH, trimmed)?;
        let mut days_of_week = parse_field(fields[4], &DAY_OF_WEEK, trimmed)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }

        Ok(Cron {
            expr: trimmed.to_string(),
            minutes,
            // The masks below keep exactly the bits the field ranges allow.
            hours: (hours & 0x00FF_FFFF) as u32,
            days_of_month: (days_of_month & 0xFFFF_FFFE) as u32,
            months: (months & 0x1FFE) as u16,
            days_of_week: (days_of_week & 0x7F) as u8,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        })
    }

    /// The first whole minute strictly after `after_ms` (milliseconds since
    /// the Unix epoch, UTC) that matches, or `None` if none within the next 5
    /// years (e.g. `"0 0 30 2 *"`).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        // First candidate: the whole minute after the one containing after_ms
        // (seconds and milliseconds are ignored, and "strictly after" means a
        // minute equal to after_ms is skipped).
        let start_minute = after_ms / MS_PER_MINUTE + 1;
        let limit_minute = start_minute + SEARCH_DAYS as u64 * u64::from(MINUTES_PER_DAY);
        let mut day = i64::try_from(start_minute / u64::from(MINUTES_PER_DAY)).ok()?;
        let mut minute_of_day = (start_minute % u64::from(MINUTES_PER_DAY)) as u32;
        let last_day = day + SEARCH_DAYS + 1;

        while day <= last_day {
            let (year, month, dom) = civil_from_days(day);
            if self.months & (1 << month) == 0 {
                // Skip to the first day of the next month.
                let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                day = days_from_civil(ny, nm, 1);
                minute_of_day = 0;
                continue;
            }
            if !self.day_matches(dom, weekday_from_days(day)) {
                day += 1;
                minute_of_day = 0;
                continue;
            }
            let hour = minute_of_day / 60;
            let Some(h) = next_bit(u64::from(self.hours), hour) else {
                day += 1;
                minute_of_day = 0;
                continue;
            };
            let from_minute = if h == hour { minute_of_day % 60 } else { 0 };
            let Some(m) = next_bit(self.minutes, from_minute) else {
                // No matching minute left in this hour: try the next hour.
                minute_of_day = (h + 1) * 60;
                if minute_of_day >= MINUTES_PER_DAY {
                    day += 1;
                    minute_of_day = 0;
                }
                continue;
            };
            let found = u64::try_from(day).ok()? * u64::from(MINUTES_PER_DAY) + u64::from(h * 60 + m);
            if found >= limit_minute {
                return None;
            }
            return found.checked_mul(MS_PER_MINUTE);
        }
        None
    }

    /// Vixie-cron day rule: with both day fields restricted, either may
    /// match; otherwise both must.
    fn day_matches(&self, dom: u32, dow: u32) -> bool {
        let dom_ok = self.days_of_month & (1 << dom) != 0;
        let dow_ok = self.days_of_week & (1 << dow) != 0;
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// Parse one field into a bitset of the values it allows.
fn parse_field(field: &str, spec: &FieldSpec, expr: &str) -> Result<u64, String> {
    let err = |msg: String| format!("cron field '{}': {msg} in {expr:?}", spec.name);
    let mut bits = 0u64;
    for item in field.split(',') {
        if item.is_empty() {
            return Err(err(format!("empty list item ({field:?})")));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                if step.is_empty() {
                    return Err(err(format!("missing step after '/' ({item:?})")));
                }
                let step: u32 = parse_number(step).ok_or_else(|| err(format!("step {step:?} is not a number")))?;
                if step == 0 {
                    return Err(err(format!("step 0 is not allowed ({item:?}; the step must be at least 1)")));
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = parse_value(a, spec).map_err(&err)?;
            let hi = parse_value(b, spec).map_err(&err)?;
            if lo > hi {
                return Err(err(format!("range {range:?} is reversed ({lo} > {hi})")));
            }
            (lo, hi)
        } else {
            let value = parse_value(range, spec).map_err(&err)?;
            // `a/n` runs from a to the field's maximum.
            (value, if step.is_some() { spec.max } else { value })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

/// Parse a single value: a number or (for month / day of week) a name.
fn parse_value(token: &str, spec: &FieldSpec) -> Result<u32, String> {
    if token.is_empty() {
        return Err("missing value in range".to_string());
    }
    let out_of_range = || format!("{token} is out of range {}-{}", spec.min, spec.max);
    let value = if token.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: too many of them is simply out of range.
        parse_number(token).ok_or_else(out_of_range)?
    } else if let Some(i) = spec.names.iter().position(|name| name.eq_ignore_ascii_case(token)) {
        spec.names_base + i as u32
    } else if spec.names.is_empty() {
        return Err(format!("{token:?} is not a number"));
    } else {
        return Err(format!("{token:?} is not a number or a name ({})", spec.names.join(", ")));
    };
    if value < spec.min || value > spec.max {
        return Err(out_of_range());
    }
    Ok(value)
}

/// Parse an unsigned decimal number made only of ASCII digits.
fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The lowest set bit of `bits` at position `from` or above.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Hinnant).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) for days since 1970-01-01 (Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day of week (0 = Sunday) for days since 1970-01-01, a Thursday.
fn weekday_from_days(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000;

    fn cron(expr: &str) -> Cron {
        Cron::parse(expr).unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"))
    }

    fn next(expr: &str, after_secs: u64) -> Option<u64> {
        cron(expr).next_after(after_secs * S).map(|ms| ms / S)
    }

    fn err(expr: &str) -> String {
        match Cron::parse(expr) {
            Ok(c) => panic!("{expr:?} should be rejected, parsed as {c:?}"),
            Err(e) => e,
        }
    }

    // Reference instants, from `date -u -d '<date>' +%s`:
    const D2024_12_31_2359: u64 = 1_735_689_540; // Tue
    const D2025_01_01: u64 = 1_735_689_600; // Wed
    const D2025_01_01_0010: u64 = 1_735_690_200;
    const D2025_01_01_0015: u64 = 1_735_690_500;
    const D2025_01_01_0040: u64 = 1_735_692_000;
    const D2025_01_01_0100: u64 = 1_735_693_200;
    const D2025_01_01_0930: u64 = 1_735_723_800;
    const D2025_01_01_1745: u64 = 1_735_753_500;
    const D2025_01_02: u64 = 1_735_776_000;
    const D2025_01_04: u64 = 1_735_948_800; // Sat
    const D2025_01_05: u64 = 1_736_035_200; // Sun
    const D2025_01_06_0900: u64 = 1_736_154_000; // Mon
    const D2025_02_01: u64 = 1_738_368_000;
    const D2025_04_01: u64 = 1_743_465_600;
    const D2025_05_10: u64 = 1_746_835_200; // Sat
    const D2025_05_13: u64 = 1_747_094_400; // Tue
    const D2025_06_01: u64 = 1_748_736_000; // Sun
    const D2025_06_06: u64 = 1_749_168_000; // Fri
    const D2025_06_10_1234: u64 = 1_749_558_840;
    const D2025_06_10_123456: u64 = 1_749_558_896;
    const D2025_06_10_1235: u64 = 1_749_558_900;
    const D2025_06_13: u64 = 1_749_772_800; // Fri
    const D2025_06_20: u64 = 1_750_377_600; // Fri
    const D2025_07_01: u64 = 1_751_328_000;
    const D2025_12_31_2359: u64 = 1_767_225_540;
    const D2026_01_01: u64 = 1_767_225_600;
    const D2028_02_29: u64 = 1_835_395_200;
    const D2096_03_01: u64 = 3_981_398_400;

    #[test]
    fn civil_round_trip_and_weekday() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday_from_days(0), 4); // Thursday
        assert_eq!(days_from_civil(2028, 2, 29) * 86_400, D2028_02_29 as i64);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for d in -800_000..800_000 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(weekday_from_days((D2025_06_13 / 86_400) as i64), 5); // Friday
    }

    #[test]
    fn every_minute_and_strictly_after() {
        // Seconds are ignored: 12:34:56 -> 12:35.
        assert_eq!(next("* * * * *", D2025_06_10_123456), Some(D2025_06_10_1235));
        // A matching minute equal to after_ms is skipped.
        assert_eq!(next("* * * * *", D2025_06_10_1234), Some(D2025_06_10_1235));
        assert_eq!(cron("* * * * *").next_after(D2025_06_10_1234 * S + 1), Some(D2025_06_10_1235 * S));
        assert_eq!(cron("* * * * *").next_after(D2025_06_10_1235 * S - 1), Some(D2025_06_10_1235 * S));
        // The same minute next year, not the minute itself.
        let again = next("34 12 10 6 *", D2025_06_10_1234).unwrap();
        assert_eq!(again, D2025_06_10_1234 + 365 * 86_400);
        assert_eq!(next("* * * * *", 0), Some(60));
    }

    #[test]
    fn rollover_month_and_year() {
        assert_eq!(next("* * * * *", D2024_12_31_2359), Some(D2025_01_01));
        assert_eq!(next("0 0 1 1 *", D2024_12_31_2359), Some(D2025_01_01));
        assert_eq!(next("0 0 1 * *", D2025_01_01), Some(D2025_02_01));
        assert_eq!(next("59 23 31 12 *", D2025_01_01), Some(D2025_12_31_2359));
        assert_eq!(next("0 0 * * *", D2025_12_31_2359), Some(D2026_01_01));
    }

    #[test]
    fn leap_day_and_impossible_dates() {
        assert_eq!(next("0 0 29 2 *", D2025_01_01), Some(D2028_02_29));
        // 2100 is not a leap year and 2104 is more than five years away.
        assert_eq!(next("0 0 29 2 *", D2096_03_01), None);
        assert_eq!(next("0 0 30 2 *", D2025_01_01), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", D2025_01_01), None);
        // Sparse schedules are cheap: many queries must finish quickly.
        let c = cron("0 0 30 2 *");
        let t = std::time::Instant::now();
        for i in 0..1_000u64 {
            assert_eq!(c.next_after((D2025_01_01 + i * 86_400) * S), None);
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn syntax_forms() {
        // Numbers, lists, ranges, steps.
        let c = cron("5 0,12 1-3 * *");
        assert_eq!(c.minutes, 1 << 5);
        assert_eq!(c.hours, (1 << 0) | (1 << 12));
        assert_eq!(c.days_of_month, 0b1110);
        assert_eq!(c.months, 0x1FFE);
        assert_eq!(c.days_of_week, 0x7F);
        assert!(!c.dom_star && c.dow_star);

        let c = cron("*/15 */6 */10 */3 */2");
        assert_eq!(c.minutes, (1 << 0) | (1 << 15) | (1 << 30) | (1 << 45));
        assert_eq!(c.hours, (1 << 0) | (1 << 6) | (1 << 12) | (1 << 18));
        assert_eq!(c.days_of_month, (1 << 1) | (1 << 11) | (1 << 21) | (1 << 31));
        assert_eq!(c.months, (1 << 1) | (1 << 4) | (1 << 7) | (1 << 10));
        assert_eq!(c.days_of_week, 0b101_0101);
        assert!(c.dom_star && c.dow_star);

        assert_eq!(cron("10-50/20 * * * *").minutes, (1 << 10) | (1 << 30) | (1 << 50));
        assert_eq!(cron("40/5 * * * *").minutes, (40..60).step_by(5).fold(0u64, |b, v| b | 1 << v));
        assert_eq!(cron("1-3,7,50-59/9 * * * *").minutes, 0b1110 | 1 << 7 | 1 << 50 | 1 << 59);
        assert_eq!(cron("* * * * *").minutes, (1u64 << 60) - 1);
        assert_eq!(cron("0 0 1 * */100").days_of_week, 1);

        assert_eq!(next("*/15 * * * *", D2025_01_01), Some(D2025_01_01_0015));
        assert_eq!(next("10-50/20 * * * *", D2025_01_01), Some(D2025_01_01_0010));
        assert_eq!(next("40/5 * * * *", D2025_01_01), Some(D2025_01_01_0040));
        assert_eq!(next("30 9,17 * * *", D2025_01_01), Some(D2025_01_01_0930));
        assert_eq!(next("45 9-17/8 * * *", D2025_01_01_0930 + 15 * 60), Some(D2025_01_01_1745));
        assert_eq!(next("0 9-17 * * 1-5", D2025_01_04), Some(D2025_01_06_0900));
        // Extra whitespace between and around fields is fine.
        assert_eq!(next("  0\t0 \t1  *   * ", D2025_01_01), Some(D2025_02_01));
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(cron("0 0 1 jul *").months, 1 << 7);
        assert_eq!(cron("0 0 1 Jan,MAR,dec *").months, (1 << 1) | (1 << 3) | (1 << 12));
        assert_eq!(cron("0 0 1 APR-jun *").months, 0b111_0000);
        assert_eq!(cron("0 0 * * mon-FRI").days_of_week, 0b011_1110);
        assert_eq!(cron("0 0 * * sun,Sat").days_of_week, 0b100_0001);
        assert_eq!(cron("0 0 * JAN-DEC/6 *").months, (1 << 1) | (1 << 7));
        assert_eq!(next("0 0 1 jul *", D2025_01_01), Some(D2025_07_01));
        assert_eq!(next("0 0 1 APR-jun *", D2025_01_01), Some(D2025_04_01));
        assert_eq!(next("0 9-17 * * MON-FRI", D2025_01_04), Some(D2025_01_06_0900));
    }

    #[test]
    fn seven_is_sunday() {
        let sunday = cron("0 0 * * 0").days_of_week;
        assert_eq!(sunday, 1);
        assert_eq!(cron("0 0 * * 7").days_of_week, sunday);
        assert_eq!(cron("0 0 * * SUN").days_of_week, sunday);
        assert_eq!(cron("0 0 * * 5-7").days_of_week, 0b110_0001);
        assert_eq!(cron("0 0 * * 0,7").days_of_week, sunday);
        assert_eq!(next("0 0 * * 7", D2025_01_01), Some(D2025_01_05));
        assert_eq!(next("0 0 * * 0", D2025_01_01), Some(D2025_01_05));
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: the 13th OR any Friday.
        let c = "0 0 13 * FRI";
        assert_eq!(next(c, D2025_06_01), Some(D2025_06_06)); // Friday the 6th
        assert_eq!(next(c, D2025_06_06), Some(D2025_06_13)); // Friday the 13th
        assert_eq!(next(c, D2025_06_13), Some(D2025_06_20)); // Friday the 20th
        assert_eq!(next(c, D2025_05_10), Some(D2025_05_13)); // Tuesday the 13th
                                                             // Only one restricted: that one alone decides.
        assert_eq!(next("0 0 13 * *", D2025_06_01), Some(D2025_06_13));
        assert_eq!(next("0 0 13 * *", D2025_05_10), Some(D2025_05_13));
        assert_eq!(next("0 0 * * FRI", D2025_06_01), Some(D2025_06_06));
        assert_eq!(next("0 0 * * FRI", D2025_05_10), Some(D2025_05_10 + 6 * 86_400));
        // A day field starting with '*' counts as unrestricted (Vixie):
        // odd days that are also Fridays.
        assert_eq!(next("0 0 */2 * FRI", D2025_06_01), Some(D2025_06_13));
    }

    #[test]
    fn macros() {
        assert_eq!(next("@yearly", D2025_01_01), Some(D2026_01_01));
        assert_eq!(next("@annually", D2025_01_01), Some(D2026_01_01));
        assert_eq!(next("@monthly", D2025_01_01), Some(D2025_02_01));
        assert_eq!(next("@weekly", D2025_01_01), Some(D2025_01_05));
        assert_eq!(next("@daily", D2025_01_01), Some(D2025_01_02));
        assert_eq!(next("@midnight", D2025_01_01), Some(D2025_01_02));
        assert_eq!(next("@hourly", D2025_01_01), Some(D2025_01_01_0100));
        assert_eq!(next("@DAILY", D2025_01_01), Some(D2025_01_02));
        let daily = cron("@daily");
        let plain = cron("0 0 * * *");
        assert_eq!(
            (daily.minutes, daily.hours, daily.days_of_month, daily.months, daily.days_of_week),
            (plain.minutes, plain.hours, plain.days_of_month, plain.months, plain.days_of_week)
        );
        assert!(err("@often").contains("@often"));
        assert!(err("@daily extra").contains("unknown cron macro"));
    }

    #[test]
    fn display_is_trimmed_original() {
        assert_eq!(cron("  0 0 * * *\n").to_string(), "0 0 * * *");
        assert_eq!(cron("*/5  *  * * mon").to_string(), "*/5  *  * * mon");
        assert_eq!(cron(" @Weekly ").to_string(), "@Weekly");
        assert_eq!(cron("0 0 * * 7"), cron("0 0 * * 7"));
        assert_ne!(cron("0 0 * * 7"), cron("0 0 * * 0"));
    }

    #[test]
    fn errors_out_of_range() {
        assert_eq!(err("0 24 * * *"), r#"cron field 'hour': 24 is out of range 0-23 in "0 24 * * *""#);
        assert!(err("60 * * * *").contains("'minute': 60 is out of range 0-59"));
        assert!(err("0 0 0 * *").contains("'day of month': 0 is out of range 1-31"));
        assert!(err("0 0 32 * *").contains("'day of month': 32 is out of range 1-31"));
        assert!(err("0 0 * 13 *").contains("'month': 13 is out of range 1-12"));
        assert!(err("0 0 * 0 *").contains("'month': 0 is out of range 1-12"));
        assert!(err("0 0 * * 8").contains("'day of week': 8 is out of range 0-7"));
        assert!(err("0 0-24 * * *").contains("'hour': 24 is out of range"));
        assert!(err("99999999999 * * * *").contains("'minute': 99999999999 is out of range 0-59"));
    }

    #[test]
    fn errors_step_and_ranges() {
        let e = err("*/0 * * * *");
        assert!(e.contains("'minute'") && e.contains("step 0"), "{e}");
        assert!(err("0 1-5/0 * * *").contains("step 0"));
        let e = err("30-10 * * * *");
        assert!(e.contains("'minute'") && e.contains("\"30-10\" is reversed"), "{e}");
        assert!(err("0 0 * * FRI-MON").contains("reversed"));
        assert!(err("0 0 * DEC-JAN *").contains("reversed"));
        assert!(err("*/ * * * *").contains("missing step"));
        assert!(err("*/x * * * *").contains("\"x\" is not a number"));
        assert!(err("1/2/3 * * * *").contains("'minute'"));
        assert!(err("1- * * * *").contains("missing value"));
        assert!(err("-1 * * * *").contains("missing value"));
        assert!(err("1-2-3 * * * *").contains("'minute'"));
        assert!(err("*-5 * * * *").contains("'minute'"));
        assert!(err("+5 * * * *").contains("'minute'"));
    }

    #[test]
    fn errors_names_and_items() {
        let e = err("0 0 * FOO *");
        assert!(e.contains("'month'") && e.contains("\"FOO\""), "{e}");
        let e = err("0 0 * * FUNDAY");
        assert!(e.contains("'day of week'") && e.contains("\"FUNDAY\""), "{e}");
        // Names belong to their own field only.
        assert!(err("0 0 * * JAN").contains("'day of week'"));
        assert!(err("0 0 * MON *").contains("'month'"));
        assert!(err("0 MON * * *").contains("'hour': \"MON\" is not a number"));
        // Empty list items.
        assert!(err("1,,2 * * * *").contains("empty list item"));
        assert!(err("1, * * * *").contains("empty list item"));
        assert!(err(",1 * * * *").contains("empty list item"));
        // Non-ASCII anywhere.
        assert!(err("０ * * * *").contains("non-ASCII"));
        assert!(err("0 0 * * MÖN").contains("non-ASCII"));
    }

    #[test]
    fn errors_field_count() {
        let e = err("0 0 * *");
        assert!(e.contains("has 4 fields, expected 5"), "{e}");
        let e = err("0 0 * * * 2025");
        assert!(e.contains("has 6 fields, expected 5"), "{e}");
        assert!(err("").contains("has 0 fields"));
        assert!(err("   ").contains("has 0 fields"));
        assert!(err("*").contains("has 1 field, expected 5"));
    }

    #[test]
    fn far_future_inputs_do_not_panic() {
        let c = cron("* * * * *");
        assert_eq!(c.next_after(u64::MAX), None);
        assert!(c.next_after(u64::MAX / 2).is_some());
    }
}
