//! `include_quality` and `min_quality_score` (docs/api.md#quality): the guide's
//! `generate_with_quality_check` ("Quality Scoring"), run by the server.
//!
//! As in the guide: up to three generations; after each one that falls short, the prompt
//! gets `" (attempt {n})"` appended (cumulatively: the third prompt ends in
//! `" (attempt 2) (attempt 3)"`); the first result scoring at least the minimum is returned,
//! else the last one. The metrics are those of `images[0]`.
//!
//! Where a server has to decide what a client script does not:
//! - the returned result always carries its metrics and score, pass or fail, since the
//!   client asked for them;
//! - an attempt that fails (blocked, no image, upstream error) counts as an attempt
//!   without images, as the guide's `result.get('images')` check treats it, and the loop
//!   goes on; but if an earlier attempt produced an image, that image is returned rather
//!   than the last attempt's error, because it has been paid for. Our own faults (500)
//!   and rate limits (429) end the attempts at once: another try would fail the same way;
//! - every attempt is a real upstream call and is charged, so the response's `usage` is
//!   the sum over attempts, and `quality_attempts` says how many were made.

use std::future::Future;

use bytes::Bytes;
use serde::Serialize;

use crate::generation::GenerationError;
use crate::generation::params::Prompt;
use crate::generation::{Outcome, Usage};
use crate::quality::{self, QualityMetrics};

/// The guide's `max_attempts`.
pub const MAX_ATTEMPTS: u32 = 3;

/// Scores of 8-bit images stay below ~20.06: contrast at most 127.5 (0.15), the variance
/// of gradients at most 255² (19.5075) and colour diversity at most 1 (0.4).
pub const MAX_MIN_SCORE: f64 = 20.0;

/// What the client asked for; `None` from [`QualityCheck::parse`] when it asked nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityCheck {
    pub min_score: Option<f64>,
}

/// The quality fields of the generation response.
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub quality_metrics: QualityMetrics,
    pub quality_score: f64,
    /// Only with `min_quality_score`: how many generations were made (and charged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_attempts: Option<u32>,
}

impl QualityCheck {
    pub fn parse(
        include_quality: Option<bool>,
        min_quality_score: Option<f64>,
    ) -> Result<Option<Self>, GenerationError> {
        let min_score = min_quality_score
            .map(|v| {
                if v.is_finite() && (0.0..=MAX_MIN_SCORE).contains(&v) {
                    Ok(v)
                } else {
                    Err(GenerationError::invalid(
                        "min_quality_score",
                        format!("The min_quality_score must be between 0 and {MAX_MIN_SCORE}."),
                    )
                    .detail("min", 0.0)
                    .detail("max", MAX_MIN_SCORE))
                }
            })
            .transpose()?;
        Ok((include_quality == Some(true) || min_score.is_some()).then_some(Self { min_score }))
    }
}

/// The prompt of attempt `attempt` (0-based), as the guide's loop builds it.
pub fn attempt_prompt(prompt: &str, attempt: u32) -> String {
    (1..=attempt).fold(prompt.to_owned(), |p, done| {
        format!("{p} (attempt {})", done + 1)
    })
}

/// A generation result the loop can measure.
pub trait Attempt: Send + 'static {
    fn first_image(&self) -> Option<Bytes>;
}

impl Attempt for Outcome {
    fn first_image(&self) -> Option<Bytes> {
        self.generated.images.first().map(|i| i.bytes.clone())
    }
}

/// The result chosen, with its measure and the other attempts that produced a result.
pub struct Checked<T> {
    pub result: T,
    pub metrics: QualityMetrics,
    pub score: f64,
    pub attempts: u32,
    pub discarded: Vec<T>,
}

/// Runs `generate` on the attempt prompts until one result scores at least `check`'s
/// minimum (one attempt when there is no minimum).
pub async fn generate_with_quality_check<T, F, Fut>(
    check: QualityCheck,
    prompt: &Prompt,
    mut generate: F,
) -> Result<Checked<T>, GenerationError>
where
    T: Attempt,
    F: FnMut(Prompt) -> Fut,
    Fut: Future<Output = Result<T, GenerationError>>,
{
    let max_attempts = if check.min_score.is_some() {
        MAX_ATTEMPTS
    } else {
        1
    };
    let mut kept: Option<(T, QualityMetrics, f64)> = None;
    let mut discarded = Vec::new();
    let mut last_error = None;
    let mut attempts = 0;
    for attempt in 0..max_attempts {
        attempts += 1;
        // Our own suffix may take the prompt past the length limit; that is not the client's.
        let text = attempt_prompt(prompt.as_str(), attempt);
        let prompt = Prompt::parse("prompt", Some(text), usize::MAX)?;
        let measured = match generate(prompt).await {
            Ok(result) => measure(result).await,
            Err(error) => Err(error),
        };
        match measured {
            Ok((result, metrics, score)) => {
                let passes = check.min_score.is_none_or(|min| score >= min);
                if let Some((earlier, ..)) = kept.replace((result, metrics, score)) {
                    discarded.push(earlier);
                }
                if passes {
                    break;
                }
            }
            Err(error) if error.ends_attempts() => {
                last_error = Some(error);
                break;
            }
            Err(error) => last_error = Some(error),
        }
    }
    match (kept, last_error) {
        (Some((result, metrics, score)), _) => Ok(Checked {
            result,
            metrics,
            score,
            attempts,
            discarded,
        }),
        (None, Some(error)) => Err(error),
        (None, None) => Err(GenerationError::internal("no quality attempt ran")),
    }
}

impl Checked<Outcome> {
    /// The chosen outcome with the quality fields, charged for every attempt.
    pub fn into_outcome(self, check: QualityCheck) -> Outcome {
        let mut outcome = self.result;
        let response = &mut outcome.response;
        for other in &self.discarded {
            response.usage = add_usage(response.usage, other.response.usage);
        }
        response.quality = Some(QualityReport {
            quality_metrics: self.metrics,
            quality_score: self.score,
            quality_attempts: check.min_score.map(|_| self.attempts),
        });
        outcome
    }
}

fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        image_tokens: a.image_tokens + b.image_tokens,
        thought_tokens: a.thought_tokens + b.thought_tokens,
        // Micro-dollars, as each attempt's cost is rounded.
        cost_usd: ((a.cost_usd + b.cost_usd) * 1e6).round() / 1e6,
    }
}

/// Measures `images[0]` off the async threads.
async fn measure<T: Attempt>(result: T) -> Result<(T, QualityMetrics, f64), GenerationError> {
    let image = result
        .first_image()
        .ok_or(GenerationError::NoImageToMeasure)?;
    let metrics = tokio::task::spawn_blocking(move || quality::assess(&image))
        .await
        .map_err(GenerationError::failed("measuring an image"))?
        .map_err(|e| GenerationError::BadResult {
            message: "The model's image could not be measured for quality.",
            upstream_message: None,
            source: Some(e.into()),
        })?;
    let score = quality::score(&metrics);
    Ok((result, metrics, score))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use image::{ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::provider::ProviderError;

    struct Fake(Option<Bytes>);

    impl Attempt for Fake {
        fn first_image(&self) -> Option<Bytes> {
            self.0.clone()
        }
    }

    fn png(image: RgbImage) -> Bytes {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        Bytes::from(out.into_inner())
    }

    /// Score 0.025: no contrast, no gradients, one colour in 16 pixels.
    fn flat() -> Bytes {
        png(RgbImage::from_pixel(4, 4, Rgb([90, 90, 90])))
    }

    /// A black and white checkerboard: score far above 1.
    fn sharp() -> Bytes {
        png(RgbImage::from_fn(8, 8, |x, y| {
            Rgb([((x + y) % 2 * 255) as u8; 3])
        }))
    }

    type Script = Vec<Result<Option<Bytes>, Fails>>;

    /// How a scripted attempt fails.
    #[derive(Debug, Clone, Copy)]
    enum Fails {
        Blocked,
        Unavailable,
        NoImage,
        RateLimited,
    }

    impl Fails {
        fn error(self) -> GenerationError {
            let usage = Default::default();
            GenerationError::Provider(match self {
                Self::Blocked => ProviderError::Blocked {
                    reason: "SAFETY".into(),
                    prompt_blocked: false,
                    message: None,
                    usage,
                },
                Self::Unavailable => ProviderError::Unavailable {
                    status: Some(503),
                    cause: "scripted".into(),
                },
                Self::NoImage => ProviderError::NoImage {
                    finish_reason: "STOP".into(),
                    text: None,
                    usage,
                },
                Self::RateLimited => ProviderError::RateLimited {
                    retry_after_secs: 1,
                },
            })
        }
    }

    /// Runs the loop on scripted attempts; returns its answer and the prompts it sent.
    async fn run(
        min_score: Option<f64>,
        script: Script,
    ) -> (Result<Checked<Fake>, GenerationError>, Vec<String>) {
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let mut script = script.into_iter();
        let seen = Arc::clone(&prompts);
        let check = QualityCheck { min_score };
        let prompt = Prompt::parse("prompt", Some("a red fox".into()), 2000).unwrap();
        let answer = generate_with_quality_check(check, &prompt, |p: Prompt| {
            seen.lock().unwrap().push(p.as_str().to_owned());
            let next = script.next().expect("no more attempts scripted");
            async move { next.map(Fake).map_err(Fails::error) }
        })
        .await;
        let prompts = prompts.lock().unwrap().clone();
        (answer, prompts)
    }

    #[test]
    fn each_retry_appends_the_next_attempt_number_to_the_prompt_cumulatively() {
        assert_eq!(attempt_prompt("a fox", 0), "a fox");
        assert_eq!(attempt_prompt("a fox", 1), "a fox (attempt 2)");
        assert_eq!(attempt_prompt("a fox", 2), "a fox (attempt 2) (attempt 3)");
    }

    #[test]
    fn min_quality_score_must_be_between_0_and_20_and_implies_metrics() {
        assert_eq!(QualityCheck::parse(None, None).unwrap(), None);
        assert_eq!(QualityCheck::parse(Some(false), None).unwrap(), None);
        assert_eq!(
            QualityCheck::parse(Some(true), None).unwrap(),
            Some(QualityCheck { min_score: None })
        );
        assert_eq!(
            QualityCheck::parse(None, Some(0.7)).unwrap(),
            Some(QualityCheck {
                min_score: Some(0.7)
            })
        );
        for bad in [-0.1, 20.5, f64::NAN] {
            let error = QualityCheck::parse(Some(true), Some(bad)).unwrap_err();
            assert_eq!(error.details()["field"], "min_quality_score");
            assert_eq!(error.details()["max"], 20.0);
        }
    }

    #[tokio::test]
    async fn without_a_minimum_one_generation_is_measured() {
        let (answer, prompts) = run(None, vec![Ok(Some(flat()))]).await;

        let checked = answer.unwrap();
        assert_eq!(prompts, ["a red fox"]);
        assert_eq!(checked.attempts, 1);
        assert_eq!(checked.metrics.resolution, "4x4");
        assert_eq!(checked.score, 0.4 / 16.0);
    }

    #[tokio::test]
    async fn the_first_result_reaching_the_minimum_is_returned() {
        let script = vec![Ok(Some(flat())), Ok(Some(sharp())), Ok(Some(flat()))];

        let (answer, prompts) = run(Some(0.5), script).await;

        let checked = answer.unwrap();
        assert_eq!(prompts, ["a red fox", "a red fox (attempt 2)"]);
        assert_eq!(checked.attempts, 2);
        assert_eq!(checked.metrics.resolution, "8x8");
        assert!(checked.score >= 0.5);
        assert_eq!(
            checked.discarded.len(),
            1,
            "the first attempt is still paid for"
        );
    }

    #[tokio::test]
    async fn when_no_attempt_reaches_the_minimum_the_last_is_returned_with_its_score() {
        let script = vec![Ok(Some(sharp())), Ok(Some(sharp())), Ok(Some(flat()))];

        let (answer, prompts) = run(Some(20.0), script).await;

        let checked = answer.unwrap();
        assert_eq!(prompts.last().unwrap(), "a red fox (attempt 2) (attempt 3)");
        assert_eq!(checked.attempts, 3);
        assert_eq!(checked.metrics.resolution, "4x4");
        assert_eq!(checked.discarded.len(), 2);
    }

    #[tokio::test]
    async fn an_image_already_paid_for_is_returned_rather_than_a_later_failure() {
        let script = vec![Ok(Some(flat())), Err(Fails::Blocked), Ok(None)];

        let (answer, prompts) = run(Some(0.5), script).await;

        let checked = answer.unwrap();
        assert_eq!(
            prompts.len(),
            3,
            "failed attempts are retried as in the guide"
        );
        assert_eq!(checked.attempts, 3);
        assert_eq!(checked.metrics.resolution, "4x4");
    }

    #[tokio::test]
    async fn when_every_attempt_fails_the_last_error_is_returned() {
        let script = vec![
            Err(Fails::Blocked),
            Err(Fails::Unavailable),
            Err(Fails::NoImage),
        ];

        let (answer, _) = run(Some(0.5), script).await;

        let error = answer.err().unwrap();
        assert!(
            matches!(
                error,
                GenerationError::Provider(ProviderError::NoImage { .. })
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_rate_limit_ends_the_attempts_at_once() {
        let (answer, prompts) = run(Some(0.5), vec![Err(Fails::RateLimited)]).await;
        let error = answer.err().unwrap();
        assert!(error.ends_attempts(), "{error:?}");
        assert_eq!(prompts.len(), 1);

        let script = vec![Ok(Some(flat())), Err(Fails::RateLimited)];
        let (answer, prompts) = run(Some(0.5), script).await;
        assert_eq!(prompts.len(), 2);
        assert_eq!(answer.unwrap().attempts, 2, "the paid image is kept");
    }
}
