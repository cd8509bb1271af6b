CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW v AS
  SELECT source_id, window_start, count(DISTINCT label) AS labels, count(DISTINCT frame_id) AS frames, count(label) AS rows
  FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
  GROUP BY source_id, window_start;
CREATE SINK out FROM v INTO STDOUT;
