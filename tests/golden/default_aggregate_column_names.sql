CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, count(*), max(confidence)
  FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE)
  GROUP BY window_start;
CREATE SINK out FROM v INTO STDOUT;
