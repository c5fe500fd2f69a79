"""Example pairs for the tests (the tutorial pairs are the demo's)."""

from tools.demo import TUTORIAL_PAIRS  # noqa: F401  (the tutorial's pairs, as the demo scores them)

MULTILINGUAL_PAIRS = [
    ["what is panda?", "hi"],
    [
        "what is panda?",
        "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or "
        "simply panda, is a bear species endemic to China.",
    ],
    ["大熊猫是什么？", "大熊猫是中国特有的熊科动物，主要栖息在四川、陕西和甘肃的山区。熊猫喜欢吃竹子。"],
    ["Où est l'école ?", "Les élèves étudient à l'école; naïve café, crème brûlée, Ångström, señor."],
    ["emoji 🐼?", "Emoji test 🐼🎋😀👍🏽 and symbols ©®™ — “quotes” ‘single’ …"],
    ["Zürich", "Der schnelle braune Fuchs springt über den faulen Hund. Быстрая коричневая лиса. 東京タワー"],
]


def many_pairs(count: int) -> list[list[str]]:
    """Deterministic pairs of widely varying lengths."""
    words = (
        "panda bear bamboo China Paris capital population 熊猫 école café 🐼 river mountain "
        "rerank passage query model score"
    ).split()
    out = []
    for i in range(count):
        q = " ".join(words[(i + k) % len(words)] for k in range(1 + i % 5))
        p = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(1 + (i * 13) % 60))
        out.append([q, p])
    return out
