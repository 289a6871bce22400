"""Typical mistakes, as edits of the solution, and the test cells each must lose (tests/test_grading.py).

``MISTAKES[assignment][name] = (solution cell grade_id, text in the solution, replacement, cells that lose points)``;
every other test cell keeps its full marks.
"""

MISTAKES = {
    "A1_reparam_kl": {
        "exp_for_softplus": ("sample_weights", "F.softplus(rho) * eps", "torch.exp(rho) * eps",
                             {"test_sample_weights", "test_bayes_linear_moments"}),
        "kl_reversed": ("kl_gaussian",
                        "torch.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5",
                        "torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5",
                        {"test_kl_gaussian_values", "test_bayes_linear_kl", "test_bbb_regression"}),
        "variance_as_std": ("bayes_linear",
                            "sample_weights(self.weight_mu, self.weight_rho, torch.randn_like(self.weight_mu))",
                            "self.weight_mu + F.softplus(self.weight_rho) ** 2 * torch.randn_like(self.weight_mu)",
                            {"test_bayes_linear_moments"}),
        "kl_not_divided_by_num_data": ("elbo_and_training", "return nll + kl / num_data", "return nll + kl",
                                       {"test_elbo_loss", "test_bbb_regression"}),
        "monte_carlo_sign": ("kl_monte_carlo", "return (log_q - log_prior(w)).mean(0)",
                             "return (log_prior(w) - log_q).mean(0)", {"test_kl_monte_carlo"}),
        "kl_log_variance_without_half": ("kl_gaussian", "torch.log(sigma_p / sigma_q)",
                                         "torch.log(sigma_p**2 / sigma_q**2)",
                                         {"test_kl_gaussian_values", "test_bayes_linear_kl"}),
        "kl_calls_the_library": ("kl_gaussian",
                                 "return torch.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / "
                                 "(2 * sigma_p**2) - 0.5",
                                 "return bt.kl.normal_normal(mu_q, sigma_q, mu_p, sigma_p)",
                                 # the library's KL is absent while a submission runs: the training fails too
                                 {"test_kl_gaussian_basic", "test_kl_gaussian_values", "test_bayes_linear_kl",
                                  "test_bbb_regression"}),
        "elbo_hard_coded": ("elbo_and_training", "return nll + kl / num_data", "return torch.tensor(0.31)",
                            {"test_elbo_loss", "test_bbb_regression"}),
        "elbo_hard_coded_num_data": ("elbo_and_training", "return nll + kl / num_data", "return nll + kl / 60_000",
                                     {"test_elbo_loss"}),
    },
}

MISTAKES["A2_bbb_lrt"] = {
    "lrt_without_square_root": ("lrt_linear", "return mean + torch.sqrt(var) * eps", "return mean + var * eps",
                                {"test_lrt_linear"}),
    "conv_sigma_not_squared": ("lrt_conv2d", "F.conv2d(x**2, weight_sigma**2,", "F.conv2d(x**2, weight_sigma,",
                               {"test_lrt_conv2d"}),
    "kl_not_divided_by_num_data": ("negative_elbo", "F.cross_entropy(logits, y) + kl / num_data",
                                   "F.cross_entropy(logits, y) + kl", {"test_negative_elbo", "test_train_accuracy"}),
    "nll_of_each_sample": ("accuracy_nll", "return float(-torch.log(p_bar[torch.arange(len(y)), y]).mean())",
                           "return float(-torch.log(probs[:, torch.arange(len(y)), y]).mean())",
                           {"test_accuracy_nll"}),
    "ece_bins_unweighted": ("ece", "total += float(inside.double().mean()) * abs(",
                            "total += (1 / num_bins) * abs(", {"test_ece"}),
    "lrt_noise_shared_by_the_batch": ("lrt_linear", "return mean + torch.sqrt(var) * eps",
                                      "return mean + torch.sqrt(var) * eps[0]", {"test_lrt_linear"}),
    "kl_divided_by_the_number_of_batches_too": ("train_and_predict",
                                                "loss = negative_elbo(model(X[idx]), y[idx], kl, len(X))",
                                                "loss = negative_elbo(model(X[idx]), y[idx], "
                                                "kl / math.ceil(len(X) / batch_size), len(X))",
                                                {"test_train_accuracy"}),
    # answers the visible tests take but the grader's own inputs do not
    "ece_hard_coded": ("ece", "return total", "return 0.15", {"test_ece"}),
    "elbo_hard_coded_num_data": ("negative_elbo", "F.cross_entropy(logits, y) + kl / num_data",
                                 "F.cross_entropy(logits, y) + kl / 60_000",
                                 {"test_negative_elbo", "test_train_accuracy"}),
    "lrt_sigma_detached": ("lrt_linear", "return mean + torch.sqrt(var) * eps",
                           "return mean + torch.sqrt(var).detach() * eps", {"test_lrt_linear"}),
}

MISTAKES["A3_mc_dropout"] = {
    "whole_model_in_train_mode": ("mc_dropout_predict",
                                  "model.eval()\n    for module in model.modules():\n        if isinstance(module, "
                                  "nn.Dropout):\n            module.train()",
                                  "model.train()", {"test_mc_dropout_batchnorm"}),
    "entropy_in_bits": ("decompose", "torch.log(p.clamp_min(1e-30))", "torch.log2(p.clamp_min(1e-30))",
                        {"test_decompose_textbook", "test_decompose_values"}),
    "aleatoric_as_entropy_of_mean": ("decompose", "aleatoric = entropy(probs).mean(0)",
                                     "aleatoric = entropy(probs.mean(0))",
                                     {"test_decompose_textbook", "test_decompose_values", "test_ood"}),
    "auroc_ties_ignored": ("auroc", "return float(greater + 0.5 * ties)", "return float(greater)", {"test_auroc"}),
    "ood_labels_reversed": ("ood_auroc", "torch.cat([torch.zeros(len(X_in)), torch.ones(len(X_out))])",
                            "torch.cat([torch.ones(len(X_in)), torch.zeros(len(X_out))])", {"test_ood"}),
    # answers the visible tests take but the grader's own inputs do not
    "ood_hard_coded": ("ood_auroc", 'return {"total": auroc(total, labels), "epistemic": auroc(epistemic, labels)}',
                       'return {"total": 0.94, "epistemic": 0.999}', {"test_ood"}),
    "dropout_found_by_position": ("mc_dropout_predict",
                                  "for module in model.modules():\n        if isinstance(module, nn.Dropout):\n"
                                  "            module.train()", "model[4].train()",
                                  {"test_mc_dropout_samples", "test_mc_dropout_batchnorm", "test_ood"}),
}

MISTAKES["A4_sparsevd"] = {
    "theta_not_squared": ("log_alpha", "torch.log(theta**2 + 1e-8)", "torch.log(theta.abs() + 1e-8)",
                          {"test_log_alpha", "test_svdo_eval_pruned", "test_svdo_kl", "test_lenet_sparsifies"}),
    "kl_without_constant": ("kl_sparsevd", "return K1 - K1 * torch.sigmoid(", "return -K1 * torch.sigmoid(",
                            {"test_kl_sparsevd", "test_svdo_kl"}),
    "variance_as_std_in_forward": ("linear_svdo", "return mean + torch.sqrt(var + 1e-8) * torch.randn_like(mean)",
                                   "return mean + (var + 1e-8) * torch.randn_like(mean)",
                                   {"test_svdo_train_moments"}),
    "eval_not_pruned": ("linear_svdo", "return x @ (self.weight * mask).T + self.bias",
                        "return x @ self.weight.T + self.bias", {"test_svdo_eval_pruned"}),
    "lrt_noise_shared_by_the_batch": ("linear_svdo", "torch.sqrt(var + 1e-8) * torch.randn_like(mean)",
                                      "torch.sqrt(var + 1e-8) * torch.randn(mean.shape[-1])",
                                      {"test_svdo_train_moments"}),
    # answers the visible tests take but the grader's own inputs do not
    "compression_hard_coded": ("compression", "return total / max(kept, 1)", "return 48 / 27", {"test_compression"}),
    "layers_found_among_children": ("compression", "[m for m in model.modules() if isinstance(m, MyLinearSVDO)]",
                                    "[m for m in model.children() if isinstance(m, MyLinearSVDO)]",
                                    {"test_compression"}),
}

MISTAKES["A6_sgmcmc"] = {
    "sgld_noise_variance_lr": ("sgld_step", "math.sqrt(2 * lr * temperature) * noise",
                               "math.sqrt(lr * temperature) * noise", {"test_sgld_step", "test_run_sgld"}),
    "sghmc_noise_without_friction": ("sghmc_step", "math.sqrt(2 * friction * lr * temperature)",
                                     "math.sqrt(2 * lr * temperature)", {"test_sghmc_step"}),
    "gradient_not_scaled_to_the_data": ("run_sgld", "grad = (n / batch_size) * X[idx].T", "grad = X[idx].T",
                                        {"test_run_sgld"}),
    "ensemble_averages_logits": ("ensemble",
                                 "probs.append(torch.softmax(model(X), dim=-1))\n    return torch.stack(probs).mean(0)",
                                 "probs.append(model(X))\n    return torch.softmax(torch.stack(probs).mean(0), -1)",
                                 {"test_ensemble_shapes"}),
    # answers the visible tests take but the grader's own inputs do not
    "sghmc_without_noise": ("sghmc_step", " + math.sqrt(2 * friction * lr * temperature) * noise", "",
                            {"test_sghmc_step"}),
    "run_sgld_ignores_the_generator": ("run_sgld", "torch.randn(p, generator=generator, dtype=X.dtype)",
                                       "torch.randn(p, dtype=X.dtype)", {"test_run_sgld"}),
}

MISTAKES["A5_ard_groups"] = {
    "prior_sd_for_variance": ("ard", "return theta**2 + sigma**2", "return (theta**2 + sigma**2).sqrt()",
                              {"test_ard_prior"}),
    "kl_ard_without_half": ("ard", "return 0.5 * F.softplus(-log_alpha)", "return F.softplus(-log_alpha)",
                            {"test_kl_ard"}),
    "group_variance_as_std": ("group_input", "torch.exp(0.5 * z_log_sigma2) * torch.randn_like(x)",
                              "torch.exp(z_log_sigma2) * torch.randn_like(x)", {"test_group_input_moments"}),
    "shrink_without_the_mask": ("shrink", "(layer.mean_weight() * layer.pruning_mask()).detach()",
                                "layer.mean_weight().detach()", {"test_shrink"}),
    # answers the visible tests take but the grader's own inputs do not
    "kl_ard_overflows": ("ard", "return 0.5 * F.softplus(-log_alpha)",
                         "return 0.5 * torch.log1p(torch.exp(-log_alpha))", {"test_kl_ard"}),
    "group_noise_shared_by_the_neurons": ("group_input", "torch.randn_like(x)", "torch.randn_like(x[:, :1])",
                                          {"test_group_input_moments"}),
    "group_pruned_hard_coded": ("group_input", "return x * z_mu * (z_log_alpha < threshold).to(x.dtype)",
                                "return torch.tensor([[1.0, 0.0, -6.0, 0.004]], dtype=torch.float64)",
                                {"test_group_input_pruned"}),
    "first_layer_threshold_hard_coded": ("shrink", "torch.nonzero(model.fc1.neuron_mask()).flatten()",
                                         "torch.nonzero(model.fc1.z_log_alpha < 3.0).flatten()",
                                         {"test_first_layer_inputs"}),
}
