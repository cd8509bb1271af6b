-- Busy windows only, with computed columns: expressions over aggregates
-- and group keys, CASE, and an aggregate used only in HAVING.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW busy AS
  SELECT source_id, window_start,
         count(*) AS n,
         round(count(*) * 1.0 / count(DISTINCT frame_id), 2) AS per_frame,
         CASE WHEN max(confidence) > 0.9 THEN 'sure' ELSE 'unsure' END AS certainty,
         upper(source_id) AS camera
  FROM TUMBLE(d, event_time, INTERVAL '5' SECOND)
  WHERE label = 'person'
  GROUP BY source_id, window_start
  HAVING count(*) >= 80 AND min(confidence) < 0.5;
CREATE SINK out FROM busy INTO STDOUT;
