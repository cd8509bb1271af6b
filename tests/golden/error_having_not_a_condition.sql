CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE)
  GROUP BY window_start
  HAVING count(*) + 1;
