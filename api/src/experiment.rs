//! The statistics of an A/B experiment (contract v3, "Experiments"): pure functions of each
//! variant's visits and conversions, tested against reference values that SciPy computed
//! (`api/tests/vectors/experiment.json`, made by `gen_experiment.py` beside it).
//!
//! - [`wilson`]: the Wilson score interval of a rate, 95 %.
//! - [`p_beat_control`]: the probability that a variant's true rate exceeds the control's, each
//!   rate Beta(1 + conversions, 1 + visits − conversions) (a uniform prior): computed exactly
//!   as a finite sum of Beta functions (Evan Miller's closed form for integer parameters), not
//!   simulated, so the same data always gives the same answer.
//! - [`sample_ratio_p`]: the chi-square test's p-value that visits are split evenly (a sample
//!   ratio mismatch under 0.01 means the split itself is broken).
//! - [`enough_data`]: every variant has at least 100 visits and 10 conversions.

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score 95 % interval of `conversions` out of `visits`; (0, 0) without visits.
pub fn wilson(conversions: u64, visits: u64) -> (f64, f64) {
    if visits == 0 {
        return (0.0, 0.0);
    }
    let n = visits as f64;
    let p = conversions.min(visits) as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Most terms of the exact sum; past it (hundreds of thousands of conversions on both sides)
/// the normal approximation of the two posteriors is far within the contract's 0.005.
const MAX_TERMS: u64 = 1_000_000;

/// P(X₂ > X₁) for X₁ ~ Beta(a1, b1), X₂ ~ Beta(a2, b2), integer `a2` (the sum has a2 terms).
fn prob_greater(a1: f64, b1: f64, a2: u64, b2: f64) -> f64 {
    let base = ln_beta(a1, b1);
    (0..a2)
        .map(|i| {
            let i = i as f64;
            (ln_beta(a1 + i, b1 + b2) - (b2 + i).ln() - ln_beta(1.0 + i, b2) - base).exp()
        })
        .sum()
}

/// The probability that the variant's true rate exceeds the control's, each a Beta posterior
/// with a uniform prior, from (conversions, visits) of each.
pub fn p_beat_control(control: (u64, u64), variant: (u64, u64)) -> f64 {
    let post = |(c, v): (u64, u64)| {
        let c = c.min(v);
        (1 + c, 1 + v - c)
    };
    let ((a1, b1), (a2, b2)) = (post(control), post(variant));
    let p = if a1.min(a2) > MAX_TERMS {
        let (m1, v1) = beta_moments(a1 as f64, b1 as f64);
        let (m2, v2) = beta_moments(a2 as f64, b2 as f64);
        normal_cdf((m2 - m1) / (v1 + v2).sqrt())
    } else if a2 <= a1 {
        prob_greater(a1 as f64, b1 as f64, a2, b2 as f64)
    } else {
        // The shorter sum: P(X₂ > X₁) = 1 − P(X₁ > X₂) (ties have no mass).
        1.0 - prob_greater(a2 as f64, b2 as f64, a1, b1 as f64)
    };
    p.clamp(0.0, 1.0)
}

fn beta_moments(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (a / s, a * b / (s * s * (s + 1.0)))
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// erf, from the regularized incomplete gamma function: erf(x) = P(1/2, x²).
fn erf(x: f64) -> f64 {
    let p = 1.0 - gamma_q(0.5, x * x);
    if x < 0.0 { -p } else { p }
}

/// The regularized upper incomplete gamma function Q(a, x) (series below a + 1, Lentz's
/// continued fraction above).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut ap, mut sum) = (a, 1.0 / a);
        let mut del = sum;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                break;
            }
        }
        (1.0 - sum * front).clamp(0.0, 1.0)
    } else {
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < EPS {
                break;
            }
        }
        (front * h).clamp(0.0, 1.0)
    }
}

/// The chi-square test's p-value that `visits` are split evenly across the variants (1 with
/// fewer than two variants or no visits).
pub fn sample_ratio_p(visits: &[u64]) -> f64 {
    let total: u64 = visits.iter().sum();
    if visits.len() < 2 || total == 0 {
        return 1.0;
    }
    let expected = total as f64 / visits.len() as f64;
    let chi2: f64 = visits.iter().map(|&v| (v as f64 - expected).powi(2) / expected).sum();
    gamma_q((visits.len() - 1) as f64 / 2.0, chi2 / 2.0)
}

/// True when every variant has at least 100 visits and 10 conversions.
pub fn enough_data(variants: &[(u64, u64)]) -> bool {
    !variants.is_empty() && variants.iter().all(|&(conversions, visits)| visits >= 100 && conversions >= 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let raw = include_str!("../tests/vectors/experiment.json");
        serde_json::from_str(raw).expect("vectors")
    }

    fn u(v: &serde_json::Value) -> u64 {
        v.as_u64().expect("a count")
    }

    #[test]
    fn wilson_intervals_match_scipy() {
        for case in vectors()["wilson"].as_array().expect("cases") {
            let (low, high) = wilson(u(&case["conversions"]), u(&case["visits"]));
            let want = (case["low"].as_f64().expect("low"), case["high"].as_f64().expect("high"));
            assert!((low - want.0).abs() < 1e-12 && (high - want.1).abs() < 1e-12, "{case}: got ({low}, {high})");
        }
        assert_eq!(wilson(0, 0), (0.0, 0.0));
    }

    #[test]
    fn the_probability_to_beat_the_control_matches_scipys_integration() {
        for case in vectors()["p_beat_control"].as_array().expect("cases") {
            let pair = |k: &str| (u(&case[k][0]), u(&case[k][1]));
            let got = p_beat_control(pair("control"), pair("variant"));
            let want = case["p"].as_f64().expect("p");
            // The contract asks for 0.005; the exact sum does far better.
            assert!((got - want).abs() < 1e-7, "{case}: got {got}");
        }
        // Symmetry, and the normal approximation past the exact sum's size.
        let (a, b) = ((120, 1000), (150, 1000));
        assert!((p_beat_control(a, b) + p_beat_control(b, a) - 1.0).abs() < 1e-12);
        let big = p_beat_control((2_000_000, 40_000_000), (2_001_000, 40_000_000));
        assert!(big > 0.5 && big < 0.8, "{big}");
    }

    #[test]
    fn the_sample_ratio_test_matches_scipys_chi_square() {
        for case in vectors()["sample_ratio"].as_array().expect("cases") {
            let visits: Vec<u64> = case["visits"].as_array().expect("visits").iter().map(u).collect();
            let got = sample_ratio_p(&visits);
            let want = case["p"].as_f64().expect("p");
            assert!((got - want).abs() < 1e-10, "{case}: got {got}");
        }
        assert_eq!(sample_ratio_p(&[42]), 1.0, "one variant splits nothing");
    }

    #[test]
    fn enough_data_needs_a_hundred_visits_and_ten_conversions_everywhere() {
        assert!(enough_data(&[(10, 100), (12, 150)]));
        assert!(!enough_data(&[(10, 100), (9, 150)]));
        assert!(!enough_data(&[(10, 99), (12, 150)]));
        assert!(!enough_data(&[]));
    }
}
