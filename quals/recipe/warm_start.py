"""Warm-start a seq2seq QAGen from an encoder-only checkpoint (BERT, MiniLM, ...).

Two architectures:

- ``"encoder-decoder"``: transformers' ``EncoderDecoderModel`` (bert2bert, Rothe et al. 2020): encoder and decoder
  are both copies of the checkpoint, the decoder gets fresh cross-attention. Twice the weights of the encoder.
- ``"bart"``: the same idea in a ``BartForConditionalGeneration`` shell, which *shares* one embedding matrix between
  encoder, decoder and output layer and allows a shallower decoder. A post-LayerNorm BERT layer and a BART layer
  compute the same function, so the encoder is exactly the checkpoint (``bart_from_bert`` maps every weight;
  tests check the encoder outputs are identical). Decoder layers copy evenly spaced encoder layers (self-attention
  and feed-forward); their cross-attention is fresh (``cross_attention_init="random"``) or a copy of the same
  layer's pretrained self-attention (``"self-attention"``), so that from step one a decoder query already looks at
  encoder tokens the way BERT looks at its own tokens. MiniLM-L6 with a 3-layer decoder (layers 0, 2, 5): 29.8 M
  weights, 60 MB in fp16, against 49 M for bert2bert.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, BartConfig, BartForConditionalGeneration, EncoderDecoderModel

from quals.engine.weights import safe_weights


def evenly_spaced_layers(num_layers: int, keep: int) -> list[int]:
    """Indices of ``keep`` of ``num_layers`` layers, first and last included (DistilBART's choice).

    >>> evenly_spaced_layers(6, 3)
    [0, 2, 5]
    """
    if not 1 <= keep <= num_layers:
        raise ValueError(f"Cannot keep {keep} of {num_layers} layers")
    if keep == 1:
        return [num_layers - 1]
    return sorted({round(i * (num_layers - 1) / (keep - 1)) for i in range(keep)})


CROSS_ATTENTION_INITS = ("random", "self-attention")


def warm_start(encoder_path: str, architecture: str, tokenizer, decoder_layers: int | None = None,
               cross_attention_init: str = "random", allow_pickle: bool = False):
    """A seq2seq model whose encoder is ``encoder_path``; decoder start = [CLS]/<s>, eos = [SEP]/</s>.

    Weights load from safetensors only unless ``allow_pickle`` (``quals.engine.weights.safe_weights``)."""
    if cross_attention_init not in CROSS_ATTENTION_INITS:
        raise ValueError(f"cross_attention_init must be one of {CROSS_ATTENTION_INITS}, got {cross_attention_init!r}")
    start_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    eos_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if architecture == "encoder-decoder":
        if decoder_layers is not None or cross_attention_init != "random":
            raise ValueError("--decoder-layers and --cross-attention-init need --architecture bart")
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder_path, encoder_path,
                                                                    **safe_weights(allow_pickle))
    elif architecture == "bart":
        model = bart_from_bert(AutoModel.from_pretrained(encoder_path, **safe_weights(allow_pickle)), decoder_layers,
                               start_id, eos_id,
                               tokenizer.pad_token_id, cross_attention_init)
    else:
        raise ValueError(f"architecture must be 'encoder-decoder' or 'bart', got {architecture!r}")
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id, config.eos_token_id = start_id, eos_id
        config.pad_token_id, config.bos_token_id = tokenizer.pad_token_id, start_id
    return model


def bart_from_bert(bert, decoder_layers: int | None, decoder_start_id: int, eos_id: int, pad_id: int,
                   cross_attention_init: str = "random") -> BartForConditionalGeneration:
    """A BART model whose encoder computes exactly ``bert`` (a ``BertModel``) and whose decoder copies its layers."""
    b = bert.config
    if getattr(b, "position_embedding_type", "absolute") != "absolute" or b.hidden_act != "gelu":
        raise ValueError("bart_from_bert needs a BERT with absolute positions and gelu activations")
    decoder_layers = decoder_layers or b.num_hidden_layers
    config = BartConfig(vocab_size=b.vocab_size, d_model=b.hidden_size, encoder_layers=b.num_hidden_layers,
                        decoder_layers=decoder_layers, encoder_attention_heads=b.num_attention_heads,
                        decoder_attention_heads=b.num_attention_heads, encoder_ffn_dim=b.intermediate_size,
                        decoder_ffn_dim=b.intermediate_size, max_position_embeddings=b.max_position_embeddings,
                        activation_function="gelu", dropout=b.hidden_dropout_prob,
                        attention_dropout=b.attention_probs_dropout_prob, activation_dropout=0.0,
                        scale_embedding=False, pad_token_id=pad_id, bos_token_id=decoder_start_id,
                        eos_token_id=eos_id, decoder_start_token_id=decoder_start_id, forced_bos_token_id=None,
                        forced_eos_token_id=None, tie_word_embeddings=True, layer_norm_eps=b.layer_norm_eps)
    model = BartForConditionalGeneration(config)
    emb = bert.embeddings
    with torch.no_grad():
        model.model.shared.weight.copy_(emb.word_embeddings.weight)
        # BART positions are offset by 2; BERT adds token type 0 to every input position, so fold it in
        positions = emb.position_embeddings.weight + emb.token_type_embeddings.weight[0]  # [P, H]
        for stack in (model.model.encoder, model.model.decoder):
            stack.embed_positions.weight.zero_()
            stack.embed_positions.weight[2:].copy_(positions)
            _copy_layer_norm(stack.layernorm_embedding, emb.LayerNorm)
        for bart_layer, bert_layer in zip(model.model.encoder.layers, bert.encoder.layer, strict=True):
            _copy_bert_layer(bart_layer, bert_layer)
        for bart_layer, index in zip(model.model.decoder.layers,
                                     evenly_spaced_layers(b.num_hidden_layers, decoder_layers), strict=True):
            _copy_bert_layer(bart_layer, bert.encoder.layer[index])
            if cross_attention_init == "self-attention":
                _copy_attention(bart_layer.encoder_attn, bart_layer.encoder_attn_layer_norm,
                                bert.encoder.layer[index].attention)
    model.tie_weights()
    return model


def _copy_bert_layer(bart_layer, bert_layer) -> None:
    _copy_attention(bart_layer.self_attn, bart_layer.self_attn_layer_norm, bert_layer.attention)
    for target, source in ((bart_layer.fc1, bert_layer.intermediate.dense), (bart_layer.fc2, bert_layer.output.dense)):
        _copy_linear(target, source)
    _copy_layer_norm(bart_layer.final_layer_norm, bert_layer.output.LayerNorm)


def _copy_attention(bart_attention, bart_layer_norm, bert_attention) -> None:
    """A BERT attention block (query/key/value/output dense + LayerNorm) into a BART attention and its LayerNorm."""
    for target, source in ((bart_attention.q_proj, bert_attention.self.query),
                           (bart_attention.k_proj, bert_attention.self.key),
                           (bart_attention.v_proj, bert_attention.self.value),
                           (bart_attention.out_proj, bert_attention.output.dense)):
        _copy_linear(target, source)
    _copy_layer_norm(bart_layer_norm, bert_attention.output.LayerNorm)


def _copy_linear(target, source) -> None:
    target.weight.copy_(source.weight)
    target.bias.copy_(source.bias)


def _copy_layer_norm(target, source) -> None:
    target.weight.copy_(source.weight)
    target.bias.copy_(source.bias)
    target.eps = source.eps
