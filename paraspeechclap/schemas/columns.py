"""The column names of manifest rows that the one reader of rows gives meaning to (no pydantic here: the row reader
imports these at start-up and the ``manifest-row`` contract, :mod:`.manifest`, only when it checks a row)."""

#: the direct audio columns, in order of precedence (absolute, or relative to the audio root)
DIRECT_AUDIO_COLUMNS = ("path", "audio", "audio_path", "file")
RELATIVE_AUDIO_PATH = "relative_audio_path"
SOURCE = "source"  # the subfolder of the audio root that relative_audio_path is under
AUDIO_ROOT = "audio_root"
TEXT_DESCRIPTION = "text_description"
INTRINSIC_TAGS = "intrinsic_tags"
SITUATIONAL_TAGS = "situational_tags"
TAG_COLUMNS = (INTRINSIC_TAGS, SITUATIONAL_TAGS)
DURATION = "duration"
CLASSIFICATION_TAG = "classification_tag"
#: the ParaSpeechCaps columns, in the dataset's order
PARASPEECHCAPS_COLUMNS = (SOURCE, RELATIVE_AUDIO_PATH, TEXT_DESCRIPTION, INTRINSIC_TAGS, SITUATIONAL_TAGS, DURATION)
