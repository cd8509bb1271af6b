CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE STREAM s AS SELECT lable, confidence FROM d;
