//! The sampler OTEL_TRACES_SAMPLER names. The settings nearly every
//! deployment runs (the default `parentbased_always_on`, `always_on`, and
//! the ratio samplers at a ratio of 1 or more) record every span, or every
//! span whose parent was sampled: that is answered here in a few
//! instructions, where the SDK's boxed, nested samplers cost a request
//! about 150 (callgrind, `GET /api/info`). Any other setting is the SDK's
//! own sampler, built from the same variables.

use std::collections::HashMap;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

#[derive(Debug, Clone)]
pub enum Configured {
    /// Every span; with `follow_parent`, every span whose parent (when it
    /// has one) was sampled.
    RecordAll { follow_parent: bool },
    /// The SDK's sampler for any other setting (ratios below 1, always off,
    /// unknown names, which it warns about), or one a test gives.
    Sdk(Box<dyn ShouldSample>),
}

impl Configured {
    /// The sampler `vars` (the process environment) configure; for any
    /// other setting the SDK reads the process environment itself.
    pub fn from_env(vars: &HashMap<String, String>) -> Self {
        let name = vars.get("OTEL_TRACES_SAMPLER").map_or("parentbased_always_on", |v| v.trim());
        let ratio_of_one = || {
            vars.get("OTEL_TRACES_SAMPLER_ARG").and_then(|arg| arg.trim().parse::<f64>().ok()).is_some_and(|r| r >= 1.0)
        };
        match name {
            "always_on" => Self::RecordAll { follow_parent: false },
            "traceidratio" if ratio_of_one() => Self::RecordAll { follow_parent: false },
            "parentbased_always_on" => Self::RecordAll { follow_parent: true },
            "parentbased_traceidratio" if ratio_of_one() => Self::RecordAll { follow_parent: true },
            _ => Self::Sdk(opentelemetry_sdk::trace::Config::default().sampler),
        }
    }
}

impl ShouldSample for Configured {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let follow_parent = match self {
            Self::RecordAll { follow_parent } => *follow_parent,
            Self::Sdk(sdk) => return sdk.should_sample(parent_context, trace_id, name, span_kind, attributes, links),
        };
        // The SDK's rules: a parent-based sampler follows a parent span when
        // there is one; the trace state is the parent's.
        let parent = parent_context.filter(|cx| cx.has_active_span());
        let record = match parent {
            Some(cx) if follow_parent => cx.span().span_context().is_sampled(),
            _ => true,
        };
        SamplingResult {
            decision: if record { SamplingDecision::RecordAndSample } else { SamplingDecision::Drop },
            attributes: Vec::new(),
            trace_state: parent.map(|cx| cx.span().span_context().trace_state().clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::Sampler;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parent(sampled: bool) -> Context {
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let span = SpanContext::new(TraceId::from(7), SpanId::from(9), flags, true, state);
        Context::new().with_remote_span_context(span)
    }

    /// What both samplers decide for a root span, a sampled parent and a
    /// parent not sampled.
    fn decisions(sampler: &dyn ShouldSample) -> Vec<(SamplingDecision, String)> {
        [None, Some(parent(true)), Some(parent(false))]
            .iter()
            .map(|cx| {
                let result =
                    sampler.should_sample(cx.as_ref(), TraceId::from(42), "GET /", &SpanKind::Server, &[], &[]);
                assert!(result.attributes.is_empty());
                (result.decision, result.trace_state.header())
            })
            .collect()
    }

    #[test]
    fn every_setting_that_records_all_decides_as_the_sdk_does() {
        let cases: [(&[(&str, &str)], Sampler); 5] = [
            (&[], Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            (&[("OTEL_TRACES_SAMPLER", "always_on")], Sampler::AlwaysOn),
            (&[("OTEL_TRACES_SAMPLER", "parentbased_always_on")], Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.0")],
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(1.0))),
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1")],
                Sampler::TraceIdRatioBased(1.0),
            ),
        ];
        for (env, sdk) in cases {
            let ours = Configured::from_env(&vars(env));
            assert!(matches!(ours, Configured::RecordAll { .. }), "{env:?}");
            assert_eq!(decisions(&ours), decisions(&sdk), "{env:?}");
        }
        // The parent's trace state is handed on; a parent not sampled is followed.
        let parent_based = decisions(&Configured::from_env(&vars(&[])));
        assert_eq!(parent_based[1], (SamplingDecision::RecordAndSample, "vendor=x".to_string()));
        assert_eq!(parent_based[2].0, SamplingDecision::Drop);
    }

    #[test]
    fn other_settings_are_the_sdk_sampler() {
        for env in [
            &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.5")][..],
            &[("OTEL_TRACES_SAMPLER", "traceidratio")],
            &[("OTEL_TRACES_SAMPLER", "always_off")],
        ] {
            assert!(matches!(Configured::from_env(&vars(env)), Configured::Sdk(_)), "{env:?}");
        }
    }
}
