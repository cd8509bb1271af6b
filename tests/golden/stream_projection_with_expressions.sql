-- A stream that selects columns and computes new ones, over confident rows.
CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE STREAM boxes AS
  SELECT frame_id, source_id, upper(label) AS label, round(w * h) AS area, event_time
  FROM d WHERE confidence > 0.8;
CREATE SINK out FROM boxes INTO STDOUT;
