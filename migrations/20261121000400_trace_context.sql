-- Tracing across processes (crates/shared/src/telemetry): the W3C trace context of the span
-- that enqueued each job, which every run of the job continues, and the context of its latest
-- run's span, which the next run (a retry or a redelivery) links to. NULL when tracing is off.
ALTER TABLE jobs
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate text,
    ADD COLUMN run_traceparent text;
