-- The quickstart: two street cameras (frames cut from the public-domain
-- film "A Trip Down Market Street", 1906), objects detected with
-- YOLOv3-tiny, and counted per camera and label every 10 seconds of event
-- time. Frames come from data/frames/<camera>/<epoch ms>.jpg, as the
-- set-up (scripts/fetch_assets.sh) writes them.

CREATE SOURCE cams FROM DIRECTORY 'data/frames' WITH (lateness = '2s');

CREATE STREAM detections AS
  SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);

CREATE VIEW counts AS
  SELECT source_id, label, window_start, window_end, count(*) AS n
  FROM TUMBLE(detections, event_time, INTERVAL '10' SECOND)
  GROUP BY source_id, label, window_start, window_end;

CREATE SINK detections_out FROM detections INTO FILE 'out/quickstart/detections.jsonl';
CREATE SINK counts_out FROM counts INTO FILE 'out/quickstart/counts.jsonl';
