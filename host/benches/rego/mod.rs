//! The reference policy's gate rules (docs/decisions.md#gate-rules) in
//! Rego, evaluated by regorus: the benchmark's comparison point and the
//! parity test's second opinion.

use regorus::{Engine, Value};

/// The gate policy source.
pub const GATE_REGO: &str = include_str!("gate.rego");

/// A regorus engine loaded with the gate policy and `params.json` as
/// `data.params`.
pub struct RegoGate {
    engine: Engine,
}

impl RegoGate {
    pub fn new(params_json: &str) -> Self {
        let mut engine = Engine::new();
        engine
            .add_policy("gate.rego".into(), GATE_REGO.into())
            .expect("gate.rego compiles");
        let params = Value::from_json_str(params_json).expect("params.json is JSON");
        let mut data = std::collections::BTreeMap::new();
        data.insert(Value::from("params"), params);
        engine.add_data(Value::from(data)).expect("data");
        RegoGate { engine }
    }

    /// From request JSON to decision JSON, as stagegate is measured.
    pub fn decide(&mut self, input_json: &str) -> String {
        self.engine
            .set_input_json(input_json)
            .expect("input is JSON");
        let v = self
            .engine
            .eval_rule("data.stagegate.gate.decision".into())
            .expect("decision evaluates");
        v.to_json_str().expect("decision encodes")
    }
}
