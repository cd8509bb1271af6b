-- GROUP BY over a plain stream: a continuously updated view, emitting its
-- changes (with diff) as rows arrive.
CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW totals AS SELECT source_id, count(*) AS n, max(confidence) AS best FROM d GROUP BY source_id;
CREATE SINK out FROM totals INTO STDOUT;
