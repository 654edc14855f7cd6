"""The BoTorch pieces the model engines share: fitting down the failure ladder (`modeling`), acquisition optimization
and outcome targets (`optimizing`), and outcome transforms. Torch is imported here: only the engines' torch halves
(and the dashboard's model surface) import these modules."""
