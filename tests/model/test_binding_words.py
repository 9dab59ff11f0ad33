import pytest

from model.binding import EntityWordNotFoundError, find_word_span, token_span
from model.config import TextEncoderConfig
from model.encoders.text import TextEncoder


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(TextEncoderConfig())


@pytest.mark.parametrize(
    ("prompt", "word", "expected"),
    [
        ("A Dog runs", "dog", "Dog"),  # case
        ("two dogs run", "dog", "dogs"),  # plural in the prompt
        ("a puppy plays", "puppies", "puppy"),  # singular in the prompt
        ("the boxes fall", "box", "boxes"),
        ("a hotdog and a dog", "dog", "dog"),  # whole words only: not inside "hotdog"
        ("a dog chases another dog", "dog", "dog"),  # repeats: the first occurrence
        ("a teddy bear sits", "teddy bear", "teddy bear"),  # multi-word entities
    ],
)
def test_word_span_finds_the_surface_form(prompt, word, expected):
    start, end = find_word_span(prompt, word)
    assert prompt[start:end] == expected
    if word == "dog" and prompt.startswith("a dog chases"):
        assert start == 2


def test_missing_word_error_names_word_and_prompt():
    with pytest.raises(EntityWordNotFoundError) as error:
        find_word_span("a cat on a mat", "giraffe")
    assert "'giraffe'" in str(error.value) and "'a cat on a mat'" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_sub_word_tokens_are_all_taken(encoder):
    prompt = "a skateboarder rides"  # WordPiece splits the rare word into pieces
    text = encoder([prompt])
    start, end = token_span(text.offsets[0], find_word_span(prompt, "skateboarder"))
    tokens = encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer(prompt)["input_ids"][start:end])
    assert end - start >= 2 and "".join(t.removeprefix("##") for t in tokens) == "skateboarder"


def test_truncated_prompt_is_a_clear_error(encoder):
    with pytest.raises(ValueError, match="truncated"):
        token_span([(0, 1), (2, 5)], (40, 45))
