"""Short contexts in many scripts for the equivalence check: each fits in one window.

Offsets are where tokenizers and aligners go wrong: accents (composed and decomposed),
pypdf's spacing diacritics and ligatures, CJK characters that BERT splits one by one, emoji
(with skin tones and zero-width joiners) that become [UNK], and several scripts in one line.
Each text is asked several questions so that a randomly initialised reader lands its best
span in different places.
"""

from __future__ import annotations

import unicodedata

QUESTIONS = (
    "What is this about?",
    "Who wrote it and when?",
    "Where does it happen?",
)

TEXTS: dict[str, str] = {
    "french": (
        "Le château de Chambord, construit à partir de 1519 sur ordre de François Ier, "
        "est célèbre pour son escalier à double révolution. Les élèves découvrent ici "
        "l'œuvre de Léonard de Vinci, réputé avoir inspiré les plans, et goûtent des crêpes "
        "près de la forêt où le cerf règne en maître."
    ),
    "german": (
        "Die Größe des Bodensees beträgt etwa 536 Quadratkilometer. Österreich, die Schweiz "
        "und Deutschland teilen sich das Ufer; im Frühjahr fährt die Fähre über Überlingen "
        "nach Meersburg, und Fußgänger genießen die Aussicht auf die Alpen."
    ),
    "spanish": (
        "El señor Muñoz viajó a Cádiz en 1998. Allí aprendió a tocar la guitarra española "
        "con un maestro andaluz; años después, ¿quién lo diría?, ganó un premio en Bogotá "
        "por su canción «Mañana será otro día»."
    ),
    "vietnamese": (
        "Hà Nội là thủ đô của Việt Nam. Hồ Hoàn Kiếm nằm ở trung tâm thành phố, và người dân "
        "thường tập thể dục quanh hồ vào buổi sáng sớm trước khi đi làm."
    ),
    "polish_czech": (
        "Źródło rzeki Wisły znajduje się w Beskidzie Śląskim. Žluťoučký kůň úpěl ďábelské ódy, "
        "zatímco Łukasz pisał wiersze o jeziorze Śniardwy w roku 2004."
    ),
    "decomposed_accents": unicodedata.normalize(
        "NFD",
        "Zoë and Renée met at the café in Córdoba; the naïve piñata cost 12 euros, "
        "and José paid for the crème brûlée after the matinée.",
    ),
    "pdf_quirks": (
        "Thanks are due to Br¨oker and M¨uller for the ﬁrst draft. The eﬃcient algorithm, "
        "c\u00a9 2022, was revised in the ﬂoating-point chapter; see Section 3.2 for the "
        "de\u00adnitions and the ﬁnal exam\u00adple."
    ),
    "chinese": (
        "北京是中华人民共和国的首都，位于华北平原的北部。故宫建于1406年至1420年，"
        "是明清两代的皇家宫殿，现为故宫博物院，每年接待游客超过一千万人次。"
    ),
    "japanese": (
        "東京スカイツリーは2012年に開業した電波塔で、高さは634メートルです。"
        "墨田区押上にあり、展望台からは富士山が見えることもあります。"
    ),
    "korean": (
        "세종대왕은 1443년에 훈민정음을 창제하였다. 한글은 과학적인 문자로 평가받으며, "
        "서울의 광화문 광장에는 세종대왕 동상이 세워져 있다."
    ),
    "chinese_latin": (
        "The Yangtze (长江, Cháng Jiāng) is 6,300 km long. 三峡大坝 (Three Gorges Dam) was "
        "completed in 2012 near 宜昌市 in Hubei province."
    ),
    "emoji": (
        "Our team 👩‍💻👨🏽‍🔬 shipped version 2.0 🚀 on Friday! The cat 🐈‍⬛ slept on the "
        "keyboard ⌨️ while we celebrated with pizza 🍕 and cake 🎂 at 5 pm."
    ),
    "emoji_flags": (
        "Delegates from 🇫🇷 France, 🇯🇵 Japan and 🇧🇷 Brazil voted yes ✅; two abstained 🤷🏻‍♀️. "
        "The next meeting is in Geneva on 3 March ❤️."
    ),
    "mixed_scripts": (
        "The word for peace is мир in Russian, ειρήνη in Greek, שלום in Hebrew, سلام in "
        "Arabic, शांति in Hindi and สันติภาพ in Thai; the conference met in Zürich in 2019."
    ),
    "arabic": (
        "القاهرة هي عاصمة مصر وأكبر مدنها. يمر نهر النيل عبر المدينة، ويزور السياح الأهرامات "
        "في الجيزة على بعد عشرين كيلومترا."
    ),
    "russian": (
        "Москва — столица России. Московский Кремль построен в конце XV века, а метро "
        "открылось в 1935 году; сегодня им пользуются миллионы пассажиров."
    ),
    "greek_math": (
        "The angle θ satisfies sin²θ + cos²θ = 1, and the constant π ≈ 3.14159 appears in "
        "Euler's identity e^{iπ} + 1 = 0, proved around 1748 by Leonhard Euler."
    ),
    "symbols_units": (
        "The reactor runs at 350 °C and 15.5 MPa; output is 1,200 MW(e) ± 2 %. Costs rose "
        "from €4.5 bn to £5 bn — roughly ¥800 bn — between 2010 and 2020."
    ),
    "hindi": (
        "ताजमहल आगरा में यमुना नदी के किनारे स्थित है। इसे मुग़ल सम्राट शाहजहाँ ने अपनी पत्नी "
        "मुमताज़ महल की याद में 1632 में बनवाना शुरू किया था।"
    ),
    "thai": (
        "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย วัดพระแก้วตั้งอยู่ในพระบรมมหาราชวัง และสร้างขึ้นในปี พ.ศ. 2325"
    ),
    "whitespace": (
        "Line one ends here.\n\n\tIndented   line\twith\ttabs and  double  spaces.\r\n"
        "The\u00a0non-breaking\u2009thin\u2003em spaces\u200bzero-width. Done in 1999."
    ),
    "apostrophes_quotes": (
        "“It’s the manufacturer’s duty,” said O’Neill, “to test the don’t-panic switch.” "
        "The rock ’n’ roll band’s album—released ’94—sold 2 million copies."
    ),
    "code_like": (
        'Call read.table("data.csv", header=TRUE) to load the file; x <- c(1, 2, 3) makes '
        "a vector, and mean(x) returns 2. See ?read.table and https://cran.r-project.org/."
    ),
    "turkish_case": (
        "İstanbul ve Izmir arasında feribot seferleri var. Işık Üniversitesi'nde öğrenciler "
        "ılık çay içip Çanakkale'ye gidiyor; şehir nüfusu 15 milyonu aşıyor."
    ),
    "fullwidth": (
        "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ ａｎｄ　ｉｄｅｏｇｒａｐｈｉｃ　ｓｐａｃｅｓ: "
        "the model ＡＢＣ－１２３ was "
        "released in ２０２１ by ＡＣＭＥ　Ｃｏｒｐ."
    ),
}


def special_items() -> list[dict]:
    """One item per (text, question): ``{"id", "question", "context", "kind"}``."""
    return [
        {"id": f"{name}/{q}", "question": question, "context": text, "kind": name}
        for name, text in TEXTS.items()
        for q, question in enumerate(QUESTIONS)
    ]
