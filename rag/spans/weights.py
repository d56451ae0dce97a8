"""The span scorer's weights by feature name (hand-set until `python -m eval.spans --write`)."""

WEIGHTS: dict[str, float] = {
    "who:person": 3.0,
    "who:org": 1.5,
    "when:date": 3.0,
    "where:place": 3.0,
    "where:org": 1.0,
    "number:number": 3.0,
    "what:noun": 1.0,
    "what:title": 1.5,
    "overlap": -4.0,
    "in_question": -2.0,
    "near": 2.0,
    "window15": 2.0,
    "window40": 1.0,
    "sentence_cover": 1.0,
    "best_sentence": 1.0,
    "left_anchor": 2.0,
    "right_anchor": 2.0,
    "len1": -1.0,
}
