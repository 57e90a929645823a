//! Tests of the plot module: real PNG / SVG files, odd inputs, downsampling.
use super::*;
use std::time::Instant;

fn input<'a>(baseline: &'a [i64], candidate: &'a [i64]) -> PlotInput<'a> {
    PlotInput {
        title: "checkout / POST /api/checkout — p99 +31.2 % (regression)".into(),
        baseline,
        candidate,
        baseline_label: "baseline main@abc123".into(),
        candidate_label: "candidate pr-42".into(),
        markers: vec![
            ("p50".into(), 0.5, 1.2e6, 1.3e6),
            ("p90".into(), 0.9, 2.5e6, 3.0e6),
            ("p99".into(), 0.99, 5.0e6, 6.6e6),
        ],
        unit: "spans",
    }
}

/// Deterministic log-normal-ish sorted sample: `n` values around `median_ns`.
fn sample(n: usize, median_ns: f64, seed: u64) -> Vec<i64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut v: Vec<i64> = (0..n)
        .map(|_| {
            let mut z = 0.0;
            for _ in 0..4 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                z += (x >> 11) as f64 / (1u64 << 53) as f64;
            }
            (median_ns * ((z - 2.0) * 1.2).exp()) as i64
        })
        .collect();
    v.sort_unstable();
    v
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn svg_attr(svg: &str, name: &str) -> Option<String> {
    let root = &svg[svg.find("<svg")?..];
    let root = &root[..root.find('>')?];
    let start = root.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(root[start..start + root[start..].find('"')?].to_string())
}

#[test]
fn png_has_signature_and_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (sample(5000, 1.2e6, 1), sample(4000, 1.4e6, 2));
    for (name, size) in [("a.png", DEFAULT_SIZE), ("b.PNG", (640, 480))] {
        let path = dir.path().join(name);
        write_plot(&path, &input(&b, &c), size).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!((be_u32(&bytes[16..20]), be_u32(&bytes[20..24])), size);
    }
}

#[test]
fn svg_root_has_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (sample(300, 1.2e6, 3), sample(200, 1.4e6, 4));
    let path = dir.path().join("plot.Svg");
    write_plot(&path, &input(&b, &c), (1200, 700)).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert_eq!(svg_attr(&svg, "width").as_deref(), Some("1200"));
    assert_eq!(svg_attr(&svg, "height").as_deref(), Some("700"));
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(thousands(999), "999");
    for text in ["p99", "n = 300", "fraction of spans ≤ x", "ms"] {
        assert!(svg.contains(text), "{text} missing");
    }
}

#[test]
fn bad_extension_empty_input_and_bad_size_error() {
    let dir = tempfile::tempdir().unwrap();
    let v = [1_000i64, 2_000];
    for name in ["plot.jpg", "plot", "plot.png.txt"] {
        let err = write_plot(&dir.path().join(name), &input(&v, &v), DEFAULT_SIZE);
        assert!(
            matches!(err, Err(PlotError::UnsupportedFormat(_))),
            "{name}: {err:?}"
        );
    }
    let err = write_plot(&dir.path().join("e.png"), &input(&[], &[]), DEFAULT_SIZE);
    assert!(matches!(err, Err(PlotError::Empty(_))), "{err:?}");
    for size in [(0, 0), (100, 600), (1000, 20_000)] {
        let err = write_plot(&dir.path().join("s.svg"), &input(&v, &v), size);
        assert!(
            matches!(err, Err(PlotError::Draw { .. })),
            "{size:?}: {err:?}"
        );
    }
    let missing_dir = dir.path().join("no/such/dir/p.png");
    let err = write_plot(&missing_dir, &input(&v, &v), DEFAULT_SIZE);
    assert!(matches!(err, Err(PlotError::Draw { .. })), "{err:?}");
}

#[test]
fn degenerate_inputs_draw_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let equal = vec![5_000i64; 3000];
    let wild = [i64::MIN, -5, 0, 0, 1, 7, i64::MAX];
    let unsorted = [9_000i64, 10, 300, 2];
    let cases: [(&[i64], &[i64]); 6] = [
        (&equal, &equal),
        (&[], &equal),
        (&wild, &[]),
        (&wild, &wild),
        (&unsorted, &[42]),
        (&[0, 0, 0], &[-1]),
    ];
    for (i, (b, c)) in cases.into_iter().enumerate() {
        let mut inp = input(b, c);
        if i == 0 {
            (inp.title, inp.baseline_label, inp.candidate_label) = Default::default();
        }
        inp.markers
            .push(("p99.9".into(), f64::NAN, f64::NAN, f64::INFINITY));
        inp.markers.push(("max".into(), 7.0, -1e300, 1e300));
        for ext in ["png", "svg"] {
            let path = dir.path().join(format!("d{i}.{ext}"));
            write_plot(&path, &inp, MIN_SIZE).unwrap();
        }
    }
}

#[test]
fn cdf_is_downsampled_monotone_and_exact_at_ends() {
    let v = sample(1_000_000, 2e6, 5);
    let (lo, hi) = (0.0, 12.0);
    let pts = cdf_points(&v, lo, hi, CURVE_POINTS);
    assert!(pts.len() <= CURVE_POINTS + 4, "{}", pts.len());
    assert_eq!(pts.first(), Some(&(lo, 0.0)));
    assert_eq!(pts.last(), Some(&(hi, 1.0)));
    assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    let at_max = pts[pts.len() - 2];
    assert_eq!(at_max, ((v[v.len() - 1] as f64).log10(), 1.0));
    // Small samples are exact steps: [3, 3, 10] steps to 2/3 at 3 and to 1 at 10.
    let steps = cdf_points(&[3, 3, 10], lo, hi, CURVE_POINTS);
    let l3 = 3f64.log10();
    assert_eq!(
        steps[1..5],
        [(l3, 0.0), (l3, 0.0), (l3, 2.0 / 3.0), (1.0, 2.0 / 3.0)]
    );
}

#[test]
fn two_million_values_draw_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (sample(1_000_000, 1.2e6, 6), sample(1_000_000, 1.5e6, 7));
    for ext in ["png", "svg"] {
        let path = dir.path().join(format!("big.{ext}"));
        let start = Instant::now();
        write_plot(&path, &input(&b, &c), DEFAULT_SIZE).unwrap();
        let took = start.elapsed();
        eprintln!("2×1M values → {ext}: {took:?}");
        // Generous: unoptimised test builds on a busy machine; release is far faster.
        assert!(took.as_secs_f64() < 5.0, "{ext} took {took:?}");
    }
}

#[test]
fn durations_and_ticks_are_readable() {
    let cases = [
        (0.0, "0 ns"),
        (250.0, "250 ns"),
        (999.9, "1 µs"),
        (1500.0, "1.5 µs"),
        (2e7, "20 ms"),
        (1234e6, "1.23 s"),
        (f64::NAN, "?"),
    ];
    for (ns, want) in cases {
        assert_eq!(format_ns(ns), want);
    }
    let (bold, _) = x_ticks(2.9, 7.1);
    let labels: Vec<_> = bold.iter().map(|x| format_ns(10f64.powf(*x))).collect();
    assert_eq!(labels.first().map(String::as_str), Some("1 µs"));
    assert!(labels.contains(&"5 ms".to_string()), "{labels:?}");
    for (lo, hi) in [(-0.3, 0.3), (3.35, 3.95), (0.0, 19.0)] {
        let (bold, light) = x_ticks(lo, hi);
        assert!(bold.len() >= 2 && bold.len() <= 25, "{lo}..{hi}: {bold:?}");
        assert!(light.len() <= 100);
    }
}
