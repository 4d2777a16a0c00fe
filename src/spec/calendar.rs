//! Proleptic Gregorian dates as days since 1970-01-01 (H. Hinnant's civil algorithms), so that
//! generated dates and timestamps are pure integer arithmetic, independent of the machine's clock
//! and time zone.

pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`
pub fn format_date(days: i64) -> String {
    let mut out = Vec::with_capacity(10);
    push_date(&mut out, days);
    String::from_utf8(out).expect("a date is ASCII")
}

/// `YYYY-MM-DD HH:MM:SS+00`, which PostgreSQL reads as timestamptz and as timestamp.
pub fn format_timestamp(seconds: i64) -> String {
    let mut out = Vec::with_capacity(22);
    push_date(&mut out, seconds.div_euclid(86_400));
    out.push(b' ');
    push_time(&mut out, seconds.rem_euclid(86_400));
    out.extend_from_slice(b"+00");
    String::from_utf8(out).expect("a timestamp is ASCII")
}

// Digit by digit rather than through `format!`: a large reset prints millions of these.

thread_local! {
    /// Days printed before, each in the slot of its number modulo 256: generated dates mostly
    /// span weeks or months, so most rows print a day printed before.
    static DAY_TEXTS: std::cell::RefCell<[(i64, [u8; 10]); 256]> =
        const { std::cell::RefCell::new([(0, [0; 10]); 256]) };
}

/// Appends `YYYY-MM-DD` (years outside 0..=9999 as `{:04}` prints them).
pub fn push_date(out: &mut Vec<u8>, days: i64) {
    DAY_TEXTS.with_borrow_mut(|texts| {
        let slot = &mut texts[days.rem_euclid(256) as usize];
        // An empty slot's text starts with a zero byte, which no date's does.
        if slot.0 != days || slot.1[0] == 0 {
            match date_text(days) {
                Some(text) => *slot = (days, text),
                None => {
                    let (y, m, d) = civil_from_days(days);
                    out.extend_from_slice(format!("{y:04}-{m:02}-{d:02}").as_bytes());
                    return;
                }
            }
        }
        out.extend_from_slice(&slot.1);
    });
}

/// `YYYY-MM-DD` of a day in years 0 to 9999.
fn date_text(days: i64) -> Option<[u8; 10]> {
    let (y, m, d) = civil_from_days(days);
    let Ok(y @ 0..10_000) = u32::try_from(y) else {
        return None;
    };
    let [y1, y2] = two_digits(y / 100);
    let [y3, y4] = two_digits(y % 100);
    let [m1, m2] = two_digits(m);
    let [d1, d2] = two_digits(d);
    Some([y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2])
}

/// Appends `HH:MM:SS` of a second of the day.
pub fn push_time(out: &mut Vec<u8>, second_of_day: i64) {
    debug_assert!((0..86_400).contains(&second_of_day));
    let second = second_of_day as u32;
    let [h1, h2] = two_digits(second / 3600);
    let [m1, m2] = two_digits(second / 60 % 60);
    let [s1, s2] = two_digits(second % 60);
    out.extend_from_slice(&[h1, h2, b':', m1, m2, b':', s1, s2]);
}

fn two_digits(n: u32) -> [u8; 2] {
    [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_print_as_format_prints_them() {
        // Years before 0 and after 9999 included.
        for days in (-1_000_000..3_500_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(format_date(days), format!("{y:04}-{m:02}-{d:02}"), "{days}");
        }
        for second in (0..86_400).step_by(7) {
            let mut out = Vec::new();
            push_time(&mut out, second);
            let expected = format!(
                "{:02}:{:02}:{:02}",
                second / 3600,
                second / 60 % 60,
                second % 60
            );
            assert_eq!(out, expected.as_bytes());
        }
    }

    #[test]
    fn days_printed_again_or_sharing_a_slot_print_as_the_first_time() {
        // Slots are days modulo 256: 5, 261 and -251 share one.
        for days in [
            5, 5, 261, 5, -251, 261, 0, 256, 0, -2_000_000, -2_000_000, 5,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(format_date(days), format!("{y:04}-{m:02}-{d:02}"), "{days}");
        }
    }

    #[test]
    fn round_trips_across_eras_and_leap_days() {
        for days in [-800_000, -1, 0, 1, 59, 60, 11_016, 20_089, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
        }
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(
            format_timestamp(1_735_689_600 + 3723),
            "2025-01-01 01:02:03+00"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59+00");
        // Years outside 0..=9999 as `format!("{y:04}")` prints them.
        let far = days_from_civil(12_345, 6, 7);
        assert_eq!(format_date(far), "12345-06-07");
        assert_eq!(format_date(days_from_civil(-44, 3, 15)), "-044-03-15");
    }
}
