//! CPU-bound image work, timed in release: the quality metrics (`quality::assess`) on a
//! 1024² PNG, and intake downscaling (`imaging::accept_input`: decode, resize to 1024 on
//! the long side, re-encode) of a 4000×3000 JPEG. `bench/run.sh` times the same work in
//! NumPy and Pillow on the same files (`bench/imaging_reference.py`).
//!
//! ```sh
//! cargo bench --bench imaging -- --dir /tmp/imaging   # inputs are written there
//! ```
//! Prints one JSON line on stdout: milliseconds per call (median and fastest).

mod support;

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use imagegate::imaging::{self, IntakeLimits};
use imagegate::quality;
use support::synth;

const RUNS: usize = 15;

/// Median and fastest of `RUNS` calls, after one unmeasured call to warm caches.
fn time(mut work: impl FnMut()) -> serde_json::Value {
    work();
    let mut ms: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    serde_json::json!({ "median_ms": ms[RUNS / 2], "min_ms": ms[0], "runs": RUNS })
}

fn main() -> std::io::Result<()> {
    // `cargo bench` passes `--bench`; the only option of ours is `--dir DIR`.
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("imagegate-bench-imaging"));
    std::fs::create_dir_all(&dir)?;

    let png = synth::png(&synth::picture(1024, 1024, synth::PNG_NOISE_BITS));
    let photo = synth::jpeg(&synth::picture(4000, 3000, synth::JPEG_NOISE_BITS), 90);
    std::fs::write(dir.join("quality_1024.png"), &png)?;
    std::fs::write(dir.join("photo_4000x3000.jpg"), &photo)?;

    let quality = time(|| {
        let metrics = quality::assess(&png).expect("the synthetic PNG decodes");
        std::hint::black_box(quality::score(&metrics));
    });
    let limits = IntakeLimits {
        max_file_bytes: 20 * 1024 * 1024,
        max_pixels: 50_000_000,
        max_edge: 1024,
    };
    let photo = Bytes::from(photo);
    let downscale = time(|| {
        let input = imaging::accept_input("image", photo.clone(), &limits)
            .expect("the synthetic JPEG is accepted");
        assert_eq!((input.width, input.height), (1024, 768));
        std::hint::black_box(input);
    });
    println!(
        "{}",
        serde_json::json!({
            "dir": dir,
            "quality_png_1024": quality,
            "downscale_jpeg_4000x3000": downscale,
            "png_bytes": png.len(),
            "photo_bytes": photo.len(),
        })
    );
    Ok(())
}
