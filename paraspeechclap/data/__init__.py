"""ParaSpeechCaps data: schema, sources (HF datasets / manifests), the training dataset, collation, samplers."""
