//! How a figure grows with the processes, said in words: linearly, bounded, or where it
//! stops being linear.
use super::group_digits;

/// How a figure grows with the processes: the cost of each process added in each step,
/// against the first step's. `per_unit`: the figure is already per event or per process,
/// so linear growth keeps it flat and it is compared as it is.
pub fn growth(what: &str, points: &[(f64, f64)], per_unit: bool) -> String {
    let valid: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, v)| n.is_finite() && v.is_finite())
        .collect();
    if valid.len() < 2 {
        return format!("{what}: one scale only, no growth to judge.");
    }
    let fmt_n = |n: f64| group_digits(n as u64);
    let (first, last) = (valid[0], valid[valid.len() - 1]);
    if per_unit {
        let ratio = last.1 / first.1;
        let shape = if ratio > 1.5 {
            "grows with the processes: the total grows faster than linearly"
        } else if ratio < 0.67 {
            "falls as the processes grow: the total grows slower than linearly"
        } else {
            "stays about flat: the total grows linearly"
        };
        return format!(
            "{what} {shape} ({:.3} at {} processes, {:.3} at {}: {ratio:.2}x).",
            first.1,
            fmt_n(first.0),
            last.1,
            fmt_n(last.0)
        );
    }
    let (lo, hi) = valid
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    if lo > 0.0 && hi / lo < 1.2 {
        return format!(
            "{what} stays about the same whatever the processes ({} to {}): bounded, not linear.",
            trim(lo),
            trim(hi)
        );
    }
    let slopes: Vec<(f64, f64, f64)> = valid
        .windows(2)
        .map(|w| (w[0].0, w[1].0, (w[1].1 - w[0].1) / (w[1].0 - w[0].0)))
        .collect();
    let base = slopes[0].2;
    if slopes.len() == 1 || base <= 0.0 {
        return format!(
            "{what}: {} per process added from {} to {} processes.",
            trim(base),
            fmt_n(slopes[0].0),
            fmt_n(slopes[0].1)
        );
    }
    match slopes.iter().skip(1).find(|s| s.2 / base > 1.5) {
        Some(&(from, to, slope)) => format!(
            "{what} stops being linear between {} and {} processes: each process added there costs {:.1}x what one added from {} to {} did ({} against {}).",
            fmt_n(from),
            fmt_n(to),
            slope / base,
            fmt_n(slopes[0].0),
            fmt_n(slopes[0].1),
            trim(slope),
            trim(base)
        ),
        None => {
            let (from, to, slope) = slopes[slopes.len() - 1];
            format!(
                "{what} grows linearly or slower: each process added from {} to {} costs {:.2}x what one added from {} to {} did ({} against {}).",
                fmt_n(from),
                fmt_n(to),
                slope / base,
                fmt_n(slopes[0].0),
                fmt_n(slopes[0].1),
                trim(slope),
                trim(base)
            )
        }
    }
}

/// A number with three significant figures, no exponent.
fn trim(v: f64) -> String {
    let digits = if v == 0.0 {
        0
    } else {
        (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize
    };
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_says_where_it_stops_being_linear() {
        let linear = growth("X", &[(1e3, 1.0), (1e4, 10.0), (5e4, 50.0)], false);
        assert!(linear.contains("linearly or slower"), "{linear}");
        let worse = growth("X", &[(1e3, 1.0), (1e4, 10.0), (5e4, 200.0)], false);
        assert!(
            worse.contains("stops being linear between 10,000 and 50,000"),
            "{worse}"
        );
        assert!(worse.contains("4.8x"), "{worse}");
        let flat = growth("X", &[(1e3, 100.0), (1e4, 101.0), (5e4, 105.0)], false);
        assert!(flat.contains("bounded"), "{flat}");
        let per = growth("X", &[(1e3, 1.0), (1e4, 1.1), (5e4, 3.0)], true);
        assert!(per.contains("faster than linearly"), "{per}");
        assert!(growth("X", &[(1e3, 1.0)], true).contains("one scale only"));
    }
}
