CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT source_id, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE)
  GROUP BY source_id, window_start
  HAVING label = 'person';
