CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW by_label AS
  SELECT label, window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE) GROUP BY label, window_start;
CREATE VIEW by_camera AS
  SELECT source_id, window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE) GROUP BY source_id, window_start;
CREATE SINK a FROM by_label INTO STDOUT;
CREATE SINK b FROM by_camera INTO STDOUT;
