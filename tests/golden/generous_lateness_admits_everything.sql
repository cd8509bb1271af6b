CREATE SOURCE d FROM DETECTIONS 'data/late.jsonl' WITH (lateness = '1m');
CREATE VIEW v AS
  SELECT window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '5' SECOND) GROUP BY window_start;
CREATE SINK out FROM v INTO STDOUT;
