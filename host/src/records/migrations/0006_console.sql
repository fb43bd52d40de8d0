-- The auditor's console (/ui): the decision log is read newest first and
-- narrowed by kind, outcome, time or deployment, a page at a time by
-- keyset (seq); the overview counts recent escalating events; a decision
-- page finds the history event it caused.
CREATE INDEX decision_log_kind ON decision_log(kind, seq);
CREATE INDEX decision_log_outcome ON decision_log(outcome, seq);
CREATE INDEX decision_log_at ON decision_log(at, seq);
CREATE INDEX decision_log_deployment_seq ON decision_log(deployment_id, seq);
CREATE INDEX deployment_events_kind_at ON deployment_events(kind, at);
CREATE INDEX deployment_events_decision ON deployment_events(decision_id);
