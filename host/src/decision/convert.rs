//! JSON request types ⇄ the typed WIT records that cross into the sandbox.
//!
//! Written once as a macro over the module holding the generated WIT types,
//! because several generated modules hold structurally similar types:
//! wasmtime's `bindgen!` on the host side, once per WIT version the host
//! serves (`wit/1.0.0/policy.wit`, `wit/policy.wit`), and wit-bindgen in the
//! policy SDK. The host instantiates it for each of wasmtime's versions
//! ([`crate::policy::bindings`]); the benchmark instantiates it for the
//! SDK's types to run the same rules natively, so all paths convert with
//! the same code and the comparison stays honest.
//!
//! The versions differ only in what 1.1.0 added (an `attestation` on
//! verification results and supply-chain evidence): the `v1_0` arm drops
//! it, since a 1.0.0 policy has no field to receive it, and the `v1_1` arm
//! passes it on. Everything else is the shared `@common` arm.
//!
//! Conversion moves strings and vectors; it does not copy them.

/// Generates, in the calling module, `gate_request`, `progression_request`,
/// `monitoring_request` (request → WIT) and `gate_verdict`,
/// `progression_verdict`, `monitoring_verdict` (WIT decision → [`Verdict`]),
/// for the WIT version named first: `v1_0: path::to::types` or
/// `v1_1: path::to::types`.
///
/// [`Verdict`]: crate::decision::Verdict
#[macro_export]
macro_rules! wit_conversions {
    (v1_0: $($wit:ident)::+) => {
        $crate::wit_conversions!(@common $($wit)::+);

        fn verification_result(x: req::VerificationResult) -> wit::VerificationResult {
            wit::VerificationResult {
                name: x.name,
                passed: x.passed,
                metric: x.metric,
                threshold: x.threshold,
                evidence: x.evidence,
            }
        }

        fn supply_chain(s: req::SupplyChain) -> wit::SupplyChain {
            wit::SupplyChain {
                third_party: s.third_party,
                controls_confirmed: s.controls_confirmed,
            }
        }
    };
    (v1_1: $($wit:ident)::+) => {
        $crate::wit_conversions!(@common $($wit)::+);

        fn attestation(a: req::Attestation) -> wit::Attestation {
            wit::Attestation {
                keyid: a.keyid,
                predicate_type: a.predicate_type,
                statement_digest: a.statement_digest,
            }
        }

        fn verification_result(x: req::VerificationResult) -> wit::VerificationResult {
            wit::VerificationResult {
                name: x.name,
                passed: x.passed,
                metric: x.metric,
                threshold: x.threshold,
                evidence: x.evidence,
                attestation: x.attestation.map(attestation),
            }
        }

        fn supply_chain(s: req::SupplyChain) -> wit::SupplyChain {
            wit::SupplyChain {
                third_party: s.third_party,
                controls_confirmed: s.controls_confirmed,
                attestation: s.attestation.map(attestation),
            }
        }
    };
    (@common $($wit:ident)::+) => {
        #[allow(unused_imports)]
        use $($wit)::+ as wit;
        use $crate::decision::request as req;
        use $crate::decision as out;

        fn ts(t: $crate::decision::Timestamp) -> wit::Timestamp {
            t.millis()
        }

        fn ts_opt(t: Option<$crate::decision::Timestamp>) -> Option<wit::Timestamp> {
            t.map(ts)
        }

        fn risk_tier(t: req::RiskTier) -> wit::RiskTier {
            match t {
                req::RiskTier::Low => wit::RiskTier::Low,
                req::RiskTier::Medium => wit::RiskTier::Medium,
                req::RiskTier::High => wit::RiskTier::High,
                req::RiskTier::Critical => wit::RiskTier::Critical,
            }
        }

        fn severity(s: req::Severity) -> wit::Severity {
            match s {
                req::Severity::Low => wit::Severity::Low,
                req::Severity::Medium => wit::Severity::Medium,
                req::Severity::High => wit::Severity::High,
                req::Severity::Critical => wit::Severity::Critical,
            }
        }

        fn item_status(s: req::ItemStatus) -> wit::ItemStatus {
            match s {
                req::ItemStatus::Open => wit::ItemStatus::Open,
                req::ItemStatus::Resolved => wit::ItemStatus::Resolved,
            }
        }

        fn system(s: req::System) -> wit::System {
            wit::System {
                id: s.id,
                risk_tier: risk_tier(s.risk_tier),
                autonomy: s.autonomy.map(|a| match a {
                    req::Autonomy::HumanInTheLoop => wit::Autonomy::HumanInTheLoop,
                    req::Autonomy::HumanOnTheLoop => wit::Autonomy::HumanOnTheLoop,
                    req::Autonomy::Autonomous => wit::Autonomy::Autonomous,
                }),
                consequential: s.consequential.unwrap_or(true),
            }
        }

        fn review(r: req::Review) -> wit::Review {
            wit::Review {
                reviewer: r.reviewer,
                completed_at: ts_opt(r.completed_at),
                outcome: r.outcome.map(|o| match o {
                    req::ReviewOutcome::Approved => wit::ReviewOutcome::Approved,
                    req::ReviewOutcome::ApprovedWithConditions => {
                        wit::ReviewOutcome::ApprovedWithConditions
                    }
                    req::ReviewOutcome::Rejected => wit::ReviewOutcome::Rejected,
                }),
                conditions: r.conditions,
            }
        }

        fn authorisation(a: req::Authorisation) -> wit::Authorisation {
            wit::Authorisation {
                authorised_by: a.authorised_by,
                role: a.role,
                authorised_at: ts_opt(a.authorised_at),
                expires_at: ts_opt(a.expires_at),
                conditions: a.conditions,
                scope: a.scope,
            }
        }

        fn criterion(c: req::Criterion) -> wit::Criterion {
            wit::Criterion {
                metric: c.metric,
                op: c.op.map(|op| match op {
                    req::Comparison::Lt => wit::Comparison::Lt,
                    req::Comparison::Le => wit::Comparison::Le,
                    req::Comparison::Gt => wit::Comparison::Gt,
                    req::Comparison::Ge => wit::Comparison::Ge,
                }),
                threshold: c.threshold,
                min_samples: c.min_samples,
            }
        }

        fn criteria(list: Vec<req::Criterion>) -> Vec<wit::Criterion> {
            list.into_iter().map(criterion).collect()
        }

        fn plan(p: req::Plan) -> wit::Plan {
            wit::Plan {
                stages: p
                    .stages
                    .into_iter()
                    .map(|s| wit::Stage {
                        name: s.name,
                        traffic_percent: s.traffic_percent,
                        population: s.population,
                        min_duration_hours: s.min_duration_hours,
                        criteria: criteria(s.criteria),
                    })
                    .collect(),
                rollback: p.rollback.map(|r| wit::RollbackPlan {
                    procedure: r.procedure,
                    tested: r.tested,
                    triggers: criteria(r.triggers),
                }),
                suspension_triggers: criteria(p.suspension_triggers),
            }
        }

        fn observations(list: Vec<req::Observation>) -> Vec<wit::Observation> {
            list.into_iter()
                .map(|o| wit::Observation {
                    metric: o.metric,
                    value: o.value,
                    samples: o.samples,
                    window_end: ts_opt(o.window_end),
                })
                .collect()
        }

        fn extensions(e: req::Extensions) -> Option<String> {
            e.map(|raw| String::from(Box::<str>::from(raw)))
        }

        /// A gate request as the WIT record.
        pub(crate) fn gate_request(r: req::GateRequest) -> wit::GateRequest {
            wit::GateRequest {
                now: ts(r.now),
                system: system(r.system),
                release: r.release.map(|x| wit::Release {
                    version: x.version,
                    artifact_digest: x.artifact_digest,
                }),
                risk: r.risk.map(|x| wit::RiskAssessment {
                    assessment_ref: x.assessment_ref,
                    assessed_at: ts_opt(x.assessed_at),
                }),
                verification: r.verification.map(|v| wit::Verification {
                    complete: v.complete,
                    integration_required: v.integration_required,
                    integration_tested: v.integration_tested,
                    results: v.results.into_iter().map(verification_result).collect(),
                }),
                review: r.review.map(review),
                authorisation: r.authorisation.map(authorisation),
                deficiencies: r
                    .deficiencies
                    .into_iter()
                    .map(|d| wit::Deficiency {
                        id: d.id,
                        severity: d.severity.map(severity),
                        status: d.status.map(item_status),
                        acceptance: d.acceptance.map(|a| wit::Acceptance {
                            accepted_by: a.accepted_by,
                            accepted_at: ts_opt(a.accepted_at),
                            rationale: a.rationale,
                            expires_at: ts_opt(a.expires_at),
                        }),
                    })
                    .collect(),
                plan: r.plan.map(plan),
                safeguards: r.safeguards.map(|s| wit::Safeguards {
                    human_oversight: s.human_oversight,
                    escalation_path: s.escalation_path,
                    user_guidance: s.user_guidance,
                    autonomy_rationale_accepted: s.autonomy_rationale_accepted,
                    compensating_controls: s.compensating_controls,
                }),
                communication: r.communication.map(|c| wit::Communication {
                    capabilities: c.capabilities,
                    intended_use: c.intended_use,
                    limitations: c.limitations,
                    reliance_conditions: c.reliance_conditions,
                    published_at: ts_opt(c.published_at),
                }),
                monitoring: r.monitoring.map(|m| wit::MonitoringSetup {
                    activated: m.activated,
                    metrics: m.metrics,
                    intensive_period_hours: m.intensive_period_hours,
                    contacts: m.contacts,
                }),
                supply_chain: r.supply_chain.map(supply_chain),
                extensions: extensions(r.extensions),
            }
        }

        /// A progression request as the WIT record.
        pub(crate) fn progression_request(r: req::ProgressionRequest) -> wit::ProgressionRequest {
            wit::ProgressionRequest {
                now: ts(r.now),
                system: system(r.system),
                plan: plan(r.plan),
                current_stage: r.current_stage,
                target_stage: r.target_stage,
                stage_entered_at: ts(r.stage_entered_at),
                observations: observations(r.observations),
                material_issues: r
                    .material_issues
                    .into_iter()
                    .map(|m| wit::MaterialIssue {
                        id: m.id,
                        severity: m.severity.map(severity),
                        status: m.status.map(item_status),
                    })
                    .collect(),
                review: r.review.map(review),
                authorisation: r.authorisation.map(authorisation),
                extensions: extensions(r.extensions),
            }
        }

        /// A monitoring request as the WIT record.
        pub(crate) fn monitoring_request(r: req::MonitoringRequest) -> wit::MonitoringRequest {
            wit::MonitoringRequest {
                now: ts(r.now),
                system: system(r.system),
                plan: plan(r.plan),
                current_stage: r.current_stage,
                deployed_at: ts(r.deployed_at),
                observations: observations(r.observations),
                extensions: extensions(r.extensions),
            }
        }

        fn findings(list: Vec<wit::Finding>) -> Vec<out::Finding> {
            list.into_iter()
                .map(|f| out::Finding {
                    code: f.code,
                    severity: match f.severity {
                        wit::FindingSeverity::Blocking => out::FindingSeverity::Blocking,
                        wit::FindingSeverity::Warning => out::FindingSeverity::Warning,
                        wit::FindingSeverity::Info => out::FindingSeverity::Info,
                    },
                    message: f.message,
                    path: f.path,
                    bundle: None,
                    controls: f.controls,
                })
                .collect()
        }

        fn obligations(list: Vec<wit::Obligation>) -> Vec<out::Obligation> {
            list.into_iter()
                .map(|o| out::Obligation {
                    code: o.code,
                    message: o.message,
                    until: o.until.map($crate::decision::Timestamp),
                })
                .collect()
        }

        /// A gate decision as a verdict.
        pub(crate) fn gate_verdict(d: wit::GateDecision) -> out::Verdict {
            out::Verdict {
                outcome: match d.outcome {
                    wit::GateOutcome::Allow => out::Outcome::Allow,
                    wit::GateOutcome::Deny => out::Outcome::Deny,
                },
                findings: findings(d.findings),
                obligations: obligations(d.obligations),
                first_stage: d.first_stage,
                next_stage: None,
                traffic_percent: None,
                rollback_to: None,
            }
        }

        /// A progression decision as a verdict.
        pub(crate) fn progression_verdict(d: wit::ProgressionDecision) -> out::Verdict {
            out::Verdict {
                outcome: match d.outcome {
                    wit::ProgressionOutcome::Promote => out::Outcome::Promote,
                    wit::ProgressionOutcome::Hold => out::Outcome::Hold,
                    wit::ProgressionOutcome::Rollback => out::Outcome::Rollback,
                    wit::ProgressionOutcome::Suspend => out::Outcome::Suspend,
                },
                findings: findings(d.findings),
                obligations: obligations(d.obligations),
                first_stage: None,
                next_stage: d.next_stage,
                traffic_percent: d.traffic_percent,
                rollback_to: d.rollback_to,
            }
        }

        /// A monitoring decision as a verdict.
        pub(crate) fn monitoring_verdict(d: wit::MonitoringDecision) -> out::Verdict {
            out::Verdict {
                outcome: match d.outcome {
                    wit::MonitoringOutcome::Healthy => out::Outcome::Healthy,
                    wit::MonitoringOutcome::Alert => out::Outcome::Alert,
                    wit::MonitoringOutcome::Rollback => out::Outcome::Rollback,
                    wit::MonitoringOutcome::Suspend => out::Outcome::Suspend,
                },
                findings: findings(d.findings),
                obligations: obligations(d.obligations),
                first_stage: None,
                next_stage: None,
                traffic_percent: None,
                rollback_to: None,
            }
        }
    };
}
