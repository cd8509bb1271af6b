-- One row 9 s behind its camera's newest, with 2 s allowed: late. A row
-- 1 s out of order is within lateness and counts.
CREATE SOURCE d FROM DETECTIONS 'data/late.jsonl' WITH (lateness = '2s');
CREATE VIEW v AS
  SELECT window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '5' SECOND) GROUP BY window_start;
CREATE SINK out FROM v INTO STDOUT;
CREATE SINK dead FROM dead_letter INTO STDOUT;
