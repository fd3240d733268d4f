# Reference values for api/src/experiment.rs, computed with SciPy (an independent library):
# Wilson intervals (binomtest.proportion_ci), P(variant beats control) for Beta posteriors
# (numerical integration of the variant's density times the control's CDF), and the
# chi-square p-value of an even split (scipy.stats.chisquare).
import json
import scipy
from scipy import stats, integrate

wilson = []
for k, n in [(0, 10), (1, 10), (5, 10), (10, 10), (12, 100), (50, 1000), (3, 7), (250, 4000), (0, 1), (999, 1000)]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    wilson.append({"conversions": k, "visits": n, "low": ci.low, "high": ci.high})

def p_beat(c_conv, c_vis, v_conv, v_vis):
    a1, b1 = 1 + c_conv, 1 + c_vis - c_conv
    a2, b2 = 1 + v_conv, 1 + v_vis - v_conv
    f = lambda x: stats.beta.pdf(x, a2, b2) * stats.beta.cdf(x, a1, b1)
    # Split around both means so that quad sees the narrow peaks.
    m1, m2 = a1 / (a1 + b1), a2 / (a2 + b2)
    pts = sorted({0.0, 1.0, m1, m2, max(0, min(m1, m2) - 0.05), min(1, max(m1, m2) + 0.05)})
    total = 0.0
    for lo, hi in zip(pts, pts[1:]):
        if hi > lo:
            total += integrate.quad(f, lo, hi, limit=500, epsabs=1e-12, epsrel=1e-10)[0]
    return total

beat = []
for case in [(10, 100, 15, 100), (15, 100, 10, 100), (10, 100, 10, 100), (0, 50, 3, 50), (120, 1000, 150, 1000),
             (500, 10000, 560, 10000), (1, 3, 2, 4), (40, 400, 30, 380), (2000, 40000, 2100, 40000), (5, 20, 0, 0)]:
    beat.append({"control": list(case[:2]), "variant": list(case[2:]), "p": p_beat(*case)})

srm = []
for visits in [[100, 100], [100, 120], [500, 550], [1000, 1100, 1050], [10, 30], [5000, 5100], [0, 0], [1, 0], [333, 333, 334]]:
    if sum(visits) == 0:
        p = 1.0
    else:
        p = float(stats.chisquare(visits).pvalue)
    srm.append({"visits": visits, "p": p})

print(json.dumps({"scipy": scipy.__version__, "wilson": wilson, "p_beat_control": beat, "sample_ratio": srm}, indent=1))
