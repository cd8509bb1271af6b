CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, count(*) FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
  WHERE label = 'person'
  GROUP BY window_start;
