"""What kind of answer a question asks for, read from its question words."""

from __future__ import annotations

import re
from typing import Literal

from rag.text.script import fold_chars

QuestionType = Literal["who", "when", "where", "number", "what", "why_how"]

# Checked in this order: "为什么" is a why even though it holds "什么", and "哪一年" a
# when even though it holds "哪". A question that names a reason but asks for a typed thing
# ("原因是因为他得罪了谁？", "和哪一个宰相有关的原因") asks for that thing: the weak why
# words (原因, 理由, 方式...) are checked after the typed rules. Patterns match the folded
# (simplified) question.
_RULES: tuple[tuple[QuestionType, re.Pattern[str]], ...] = (
    ("why_how", re.compile(r"为什么|为何|何以|怎么样|怎样|怎么|如何")),
    (
        "when",
        re.compile(
            r"何时|什么时候|什么时间|哪一?个?(年|月|天|日|朝代|时期|年代|世纪)|几月|几号|几日|"
            r"几时|多久|多长时间|日期|年份|哪些年|何年|那一年"
        ),
    ),
    ("number", re.compile(r"多少|几|多[大长高重远宽深厚快]|百分之|比例|数量|人口|面积")),
    (
        "where",
        re.compile(
            r"哪里|哪儿|何处|何地|什么地方|哪个?(国家|城市|省|州|地区|地方|国|市|县|区|洲|岛)|在哪|位于"
        ),
    ),
    ("who", re.compile(r"谁|哪一?位|什么人|哪个人|何人|哪些人")),
    ("why_how", re.compile(r"原因|理由|何种方式|什么方式|什么意义")),
)


def question_type(question: str) -> QuestionType:
    """The answer type `question` expects; "what" when no rule says otherwise.

    A "why_how" question is answered by a sentence, not a span.
    """
    folded = fold_chars(question)
    for kind, pattern in _RULES:
        if pattern.search(folded):
            return kind
    return "what"
