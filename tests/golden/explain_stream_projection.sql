CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
EXPLAIN CREATE STREAM boxes AS
  SELECT frame_id, upper(label) AS label, round(w * h) AS area, event_time FROM d WHERE confidence > 0.8;
