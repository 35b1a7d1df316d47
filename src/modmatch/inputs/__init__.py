"""What the user hands modmatch, read: the config (:mod:`.configs`, its kind detected from its
content) and the model (:mod:`.models`: a built-in shape, a config.json or folder, a Hub id in
the local cache, or a names file; built as the class the trainer builds, :mod:`.model_class`)."""
