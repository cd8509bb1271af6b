CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE STREAM s AS SELECT * FROM DETECT(d, model => 'objects');
